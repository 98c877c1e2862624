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
#include "engine/export/compressed_tensors_export.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/model_file.h"
#include "engine/model/llama_save.h"
#include "engine/recipe/recipe.h"
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

TEST(CompressedTensorsExport, RefusesWhatIsNotACompressedModel) {
  const fs::path root = test::fresh_temp_dir();
  save_llama_hf(test::random_llama(test::tiny_config(), 1), (root / "plain").string());
  EXPECT_THROW(export_compressed_tensors((root / "plain").string(), (root / "out").string()), Error);
  EXPECT_FALSE(fs::exists(root / "out"));
}
