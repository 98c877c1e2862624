// mcw export --format compressed-tensors: a compressed model directory goes out as
// pack-quantized parts where its layers have that form, and reads back through MCW's
// compressed-tensors reader to the f16-rounded values of the layers' own dequantize();
// the rest is written dense and listed in the config's ignore list.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/compress/compress_llama.h"
#include "engine/compress/gptq.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/export/awq_fold.h"
#include "engine/export/compressed_tensors_export.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/model_file.h"
#include "engine/model/llama_save.h"
#include "engine/recipe/recipe.h"
#include "compress_test_util.h"
#include "llama_test_util.h"
#include "quant_test_util.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

// RTN 4-bit g32 asymmetric on attention, 3-bit on gate/up (no pack-quantized form), 50 %
// magnitude on down_proj, and one layer replaced by an 8-bit symmetric act-order GPTQ.
constexpr const char* kRecipe =
    "stages:\n"
    "  - algorithm: rtn\n    bits: 4\n    group_size: 32\n    targets: ['*self_attn*']\n"
    "  - algorithm: rtn\n    bits: 3\n    group_size: 32\n    targets: ['*gate_proj*', '*up_proj*']\n"
    "  - algorithm: magnitude\n    sparsity: 0.5\n    targets: ['*down_proj*']\n";

struct Compressed {
  fs::path dir;
  std::map<std::string, CompressedTensor> layers;
};

// `model_type` "phi3": the directory holds q/k/v and gate/up fused, as Phi-3's does.
Compressed write_compressed(const fs::path& dir, const std::string& model_type = "llama") {
  LlamaConfig c = test::tiny_config(8, 4);
  c.model_type = model_type;
  c.hidden_dim = 64;
  c.vocab_size = 258;
  const LlamaModel base = test::random_llama(c, 21);
  CompressionResult r = compress_llama(base, parse_recipe(kRecipe, "export-test"), {}, {});
  // An act-order GPTQ layer in place of layer 1's k_proj.
  const std::string k = "model.layers.1.self_attn.k_proj.weight";
  Tensor* w = nullptr;
  for (auto& [name, t] : r.model.named_tensors())
    if (name == k) w = t;
  const Tensor orig = base.layers[1].wk;
  const auto x = quant_test::gaussian(size_t(200 * c.dim), 4);
  LayerStats st{c.dim, std::vector<double>(size_t(c.dim * c.dim)), {}, {}, 200};
  for (int64_t s = 0; s < 200; ++s)
    for (int64_t i = 0; i < c.dim; ++i)
      for (int64_t j = 0; j < c.dim; ++j)
        st.xtx[size_t(i * c.dim + j)] += double(x[size_t(s * c.dim + i)]) * x[size_t(s * c.dim + j)];
  GptqOptions o;
  o.bits = 8, o.group_size = 16, o.symmetric = true, o.act_order = true;
  CompressedTensor g = quantize_gptq(orig.as<float>(), orig.dim(0), orig.dim(1), st, o, nullptr, k);
  *w = g.dequantize();
  w->set_name(k);
  Compressed out{dir, {}};
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(r.model, dir.string(), tok);
  std::vector<const CompressedTensor*> packed;
  for (CompressedLayer& l : r.layers) {
    if (l.tensor.name == k) l.tensor = g;
    out.layers[l.tensor.name] = l.tensor;
  }
  for (const auto& [name, t] : out.layers) packed.push_back(&t);
  write_packed_safetensors((dir / kPackedFileName).string(), packed);
  return out;
}

}  // namespace

TEST(CompressedTensorsExport, PackedLayersReadBackToTheirValuesAndTheRestIsDense) {
  const fs::path root = test::fresh_temp_dir();
  const Compressed c = write_compressed(root / "compressed");
  const CtExportReport report =
      export_compressed_tensors((root / "compressed").string(), (root / "ct").string());
  EXPECT_EQ(report.packed.size(), 8u);  // q/k/v/o of both blocks
  EXPECT_EQ(report.dense.size(), 6u);   // gate/up (3 bits), down (sparse)

  const ModelFile back = open_model_file((root / "ct").string());
  const ModelFile mcw_out = open_model_file((root / "compressed").string());
  for (const auto& [name, layer] : c.layers) {
    const Tensor* t = back.find(name);
    ASSERT_NE(t, nullptr) << name;
    const bool packed = std::find(report.packed.begin(), report.packed.end(), name) != report.packed.end();
    EXPECT_EQ(t->dtype() == DType::Packed, packed) << name;
    std::vector<float> want = packed ? layer.dequantize().to_f32() : mcw_out.find(name)->to_f32();
    if (packed)
      for (float& v : want) v = f16_to_f32(f32_to_f16(v));
    EXPECT_EQ(t->to_f32(), want) << name;
  }
  EXPECT_EQ(back.find("model.layers.1.self_attn.k_proj.weight")->decoder()->describe(),
            "compressed-tensors int8 g16 sym, act-order");
  EXPECT_EQ(back.find("model.layers.0.self_attn.q_proj.weight")->decoder()->describe(),
            "compressed-tensors int4 g32 asym");
  const auto& q = back.hparams["quantization_config"];
  EXPECT_EQ(q["format"], "pack-quantized");
  const std::string ignore = q["ignore"].dump();
  EXPECT_NE(ignore.find("model.layers.0.mlp.gate_proj"), std::string::npos) << ignore;
  EXPECT_NE(ignore.find("model.layers.1.mlp.down_proj"), std::string::npos) << ignore;
  EXPECT_TRUE(fs::exists(root / "ct" / "mcw_tokenizer.json"));
}

// MCW's packed layers are a Phi-3's parts: the export writes them apart, with the config
// of the Llama the model computes.
TEST(CompressedTensorsExport, Phi3GoesOutWithItsPartsApart) {
  const fs::path root = test::fresh_temp_dir();
  const Compressed c = write_compressed(root / "compressed", "phi3");
  ASSERT_EQ(open_model_file((root / "compressed").string()).find("model.layers.0.self_attn.q_proj.weight"), nullptr);
  const CtExportReport report =
      export_compressed_tensors((root / "compressed").string(), (root / "ct").string());
  EXPECT_EQ(report.packed.size(), 8u);
  const ModelFile back = open_model_file((root / "ct").string());
  EXPECT_EQ(back.hparams["model_type"], "llama");
  for (const auto& [name, layer] : c.layers) ASSERT_NE(back.find(name), nullptr) << name;
  EXPECT_EQ(back.find("model.layers.0.self_attn.q_proj.weight")->decoder()->describe(),
            "compressed-tensors int4 g32 asym");
}

namespace {

// An AWQ run (4-bit g32) of a model with `kv_heads` over 4 heads, written as mcw compress
// writes it; `dir`.
CompressionResult write_awq(const fs::path& dir, int64_t kv_heads) {
  LlamaConfig c = test::tiny_config(4, kv_heads);
  c.hidden_dim = 64;
  c.vocab_size = 258;
  const LlamaModel base = test::random_llama(c, 31);
  CompressionResult r = compress_llama(
      base, parse_recipe("stages:\n  - algorithm: awq\n    bits: 4\n    group_size: 32\n", "awq"),
      test::random_tokens(1500, 32), test::calib_options(8, 64));
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(r.model, dir.string(), tok);
  std::vector<const CompressedTensor*> packed;
  for (const CompressedLayer& l : r.layers) packed.push_back(&l.tensor);
  write_packed_safetensors((dir / kPackedFileName).string(), packed);
  return r;
}

// Largest |logit difference| over the largest |logit| of `a`, on one prompt.
double logit_gap(const LlamaModel& a, const LlamaModel& b) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < 12; ++i) prompt.push_back(int32_t((i * 29 + 5) % 256));
  const size_t n = prompt.size() * size_t(a.cfg.vocab_size);
  std::vector<float> x(n), y(n);
  KVCache ka(a.cfg, 16), kb(b.cfg, 16);
  llama_forward(a, prompt, ka, x.data());
  llama_forward(b, prompt, kb, y.data());
  double gap = 0, scale = 0;
  for (size_t i = 0; i < n; ++i)
    gap = std::max(gap, double(std::fabs(x[i] - y[i]))), scale = std::max(scale, double(std::fabs(x[i])));
  return gap / scale;
}

}  // namespace

// AWQ layers go out as their codes with s folded into the op before them (the norms,
// v_proj's and up_proj's rows): every layer packed, the norms exactly the model's ÷ s, and
// the checkpoint computes what the MCW run computes (to the f16 rounding of the folded
// v/up scales).
TEST(CompressedTensorsExport, AwqScalesFoldIntoTheOpsBeforeThem) {
  const fs::path root = test::fresh_temp_dir();
  const CompressionResult r = write_awq(root / "compressed", 4);
  const CtExportReport report =
      export_compressed_tensors((root / "compressed").string(), (root / "ct").string());
  EXPECT_EQ(report.packed.size(), 14u);
  EXPECT_TRUE(report.dense.empty()) << report.dense.front().first << ": " << report.dense.front().second;
  std::map<std::string, std::vector<float>> scale;
  for (const CompressedLayer& l : r.layers)
    if (!l.tensor.input_scale.empty()) scale[l.tensor.name] = l.tensor.input_scale;
  EXPECT_EQ(report.awq_folded.size(), scale.size());
  ASSERT_GE(scale.size(), 8u);

  const ModelFile back = open_model_file((root / "ct").string());
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    const LlamaLayer& l = r.model.layers[size_t(layer)];
    for (auto [norm, reader, weight] : {std::tuple{"input_layernorm", "self_attn.q_proj", &l.attn_norm},
                                        std::tuple{"post_attention_layernorm", "mlp.gate_proj", &l.ffn_norm}}) {
      const auto s = scale.find(p + reader + ".weight");
      const std::vector<float> got = back.find(p + norm + ".weight")->to_f32();
      std::vector<float> want = weight->to_f32();
      if (s != scale.end())
        for (size_t j = 0; j < want.size(); ++j) want[j] /= s->second[j];
      EXPECT_EQ(got, want) << p << norm;
    }
  }
  const LlamaModel ct = load_llama(back);
  EXPECT_LT(logit_gap(r.model, ct), 5e-3);
}

// Under grouped-query attention o_proj carries no scale (the reference scales it only
// where the scale can fold into v_proj), so it too goes out packed.
TEST(CompressedTensorsExport, AwqUnderGroupedQueryAttention) {
  const fs::path root = test::fresh_temp_dir();
  const CompressionResult r = write_awq(root / "compressed", 2);
  const CtExportReport report =
      export_compressed_tensors((root / "compressed").string(), (root / "ct").string());
  EXPECT_EQ(report.packed.size(), 14u);
  EXPECT_TRUE(report.dense.empty());
  EXPECT_LT(logit_gap(r.model, load_llama(open_model_file((root / "ct").string()))), 5e-3);
}

// Where each scale folds, and when it cannot: a member of the group without the scale (or
// with another), o_proj under grouped-query attention.
TEST(AwqFold, PlansWhereEachScaleGoes) {
  LlamaConfig c = test::tiny_config(4, 4);
  c.qkv_bias = true;
  const int64_t d = c.dim;
  const std::vector<float> s(size_t(d), 2.0f), t(size_t(d), 3.0f);
  const std::string p = "model.layers.0.";
  std::map<std::string, std::vector<float>> scales = {
      {p + "self_attn.q_proj.weight", s}, {p + "self_attn.k_proj.weight", s},
      {p + "self_attn.v_proj.weight", s}, {p + "self_attn.o_proj.weight", t},
      {p + "mlp.gate_proj.weight", s},     {p + "mlp.down_proj.weight", std::vector<float>(size_t(c.hidden_dim), 5.0f)}};
  AwqFolds f = plan_awq_folds(c, scales);
  EXPECT_EQ(f.divide.at(p + "input_layernorm.weight"), s);
  EXPECT_EQ(f.divide.at(p + "self_attn.v_proj.weight"), t);  // o_proj's, on v's rows
  EXPECT_EQ(f.divide.at(p + "self_attn.v_proj.bias"), t);
  EXPECT_EQ(f.divide.at(p + "mlp.up_proj.weight")[0], 5.0f);  // down_proj's
  EXPECT_EQ(f.divide.count(p + "post_attention_layernorm.weight"), 0u);
  EXPECT_NE(f.refused.at(p + "mlp.gate_proj.weight").find("up_proj.weight reads the same input without"),
            std::string::npos);
  EXPECT_EQ(f.folded.size(), 5u);

  scales[p + "self_attn.k_proj.weight"] = t;  // k with another scale: q/k/v all refused
  f = plan_awq_folds(c, scales);
  EXPECT_EQ(f.refused.count(p + "self_attn.q_proj.weight"), 1u);
  EXPECT_NE(f.refused.at(p + "self_attn.v_proj.weight").find("another AWQ scale"), std::string::npos);
  EXPECT_EQ(f.divide.count(p + "input_layernorm.weight"), 0u);

  c = test::tiny_config(4, 2);
  f = plan_awq_folds(c, {{p + "self_attn.o_proj.weight", t}});
  EXPECT_NE(f.refused.at(p + "self_attn.o_proj.weight").find("grouped-query"), std::string::npos);
  EXPECT_TRUE(f.divide.empty());
}

TEST(CompressedTensorsExport, RefusesWhatIsNotACompressedModel) {
  const fs::path root = test::fresh_temp_dir();
  save_llama_hf(test::random_llama(test::tiny_config(), 1), (root / "plain").string());
  EXPECT_THROW(export_compressed_tensors((root / "plain").string(), (root / "out").string()), Error);
  EXPECT_FALSE(fs::exists(root / "out"));
}
