// Synthetic real-shape models (mcw synth): the real shapes' tensor lists and sizes without
// writing them, and the tiny shape written, loaded and run.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors_stream.h"
#include "engine/model/llama_model.h"
#include "engine/model/llama_save.h"
#include "engine/model/synth_model.h"
#include "engine/model/tokenizer_loader.h"
#include "tests/engine/llama_test_util.h"
#include "tests/engine/temp_files.h"

using namespace mcw;
using mcw::test::fresh_temp_dir;
using mcw::test::read_bytes;
namespace fs = std::filesystem;

namespace {

SynthPlan plan(const std::string& shape, uint64_t seed = 0, int64_t outliers = 6) {
  SynthOptions o;
  o.shape = shape;
  o.seed = seed;
  o.outliers = outliers;
  return plan_synth_model(o);
}

std::map<std::string, Shape> shapes_of(const SynthPlan& p) {
  std::map<std::string, Shape> m;
  for (const SynthTensor& t : p.tensors) m[t.name] = t.shape;
  return m;
}

std::vector<float> values_f32(const SynthPlan& p, const std::string& name) {
  for (size_t t = 0; t < p.tensors.size(); ++t)
    if (p.tensors[t].name == name) {
      std::vector<uint16_t> bits(size_t(p.tensors[t].numel()));
      synth_values(p, t, 0, p.tensors[t].numel(), bits.data());
      std::vector<float> v;
      for (uint16_t b : bits) v.push_back(bf16_to_f32(b));
      return v;
    }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

}  // namespace

TEST(SynthModel, RealShapesHaveTheRealParameterCounts) {
  // The published sizes (ANCHORS.md) and the exact counts of the real checkpoints.
  const struct {
    const char* shape;
    double billions;
    uint64_t exact;
    size_t tensors;
  } rows[] = {
      {"llama-3.2-1b", 1.24, 1235814400, 1 + 16 * 9 + 1},
      {"llama-3-8b", 8.03, 8030261248, 1 + 32 * 9 + 2},
      {"qwen2.5-0.5b", 0.49, 494032768, 1 + 24 * 12 + 1},
      {"gpt2-xl", 1.56, 1557611200, 2 + 48 * 12 + 2},
  };
  for (const auto& r : rows) {
    const SynthPlan p = plan(r.shape);
    EXPECT_NEAR(double(p.parameter_count()) / 1e9, r.billions, r.billions * 0.01) << r.shape;
    EXPECT_EQ(p.parameter_count(), r.exact) << r.shape;
    EXPECT_EQ(p.data_bytes(), 2 * r.exact) << r.shape;
    EXPECT_EQ(p.tensors.size(), r.tensors) << r.shape;
    // The header of the file these tensors make is a few tens of kB, whatever the model.
    std::vector<SafetensorsEntry> entries;
    for (const SynthTensor& t : p.tensors) entries.push_back({t.name, DType::BF16, t.shape});
    EXPECT_LT(safetensors_header("x", entries).size(), 100000u) << r.shape;
  }
}

TEST(SynthModel, RealShapesHaveTheRealTensorShapes) {
  const auto l1 = shapes_of(plan("llama-3.2-1b"));
  EXPECT_EQ(l1.at("model.embed_tokens.weight"), (Shape{128256, 2048}));
  EXPECT_EQ(l1.at("model.layers.15.self_attn.q_proj.weight"), (Shape{2048, 2048}));
  EXPECT_EQ(l1.at("model.layers.15.self_attn.k_proj.weight"), (Shape{512, 2048}));
  EXPECT_EQ(l1.at("model.layers.0.mlp.down_proj.weight"), (Shape{2048, 8192}));
  EXPECT_EQ(l1.count("lm_head.weight"), 0u);  // tied
  const SynthPlan p1 = plan("llama-3.2-1b");
  EXPECT_TRUE(p1.cfg.rope_scaling.enabled);
  EXPECT_EQ(p1.cfg.rope_scaling.factor, 32);
  EXPECT_EQ(p1.hf_config()["rope_scaling"]["rope_type"], "llama3");

  const auto l8 = shapes_of(plan("llama-3-8b"));
  EXPECT_EQ(l8.at("lm_head.weight"), (Shape{128256, 4096}));
  EXPECT_EQ(l8.at("model.layers.31.self_attn.v_proj.weight"), (Shape{1024, 4096}));
  EXPECT_EQ(l8.at("model.layers.31.mlp.gate_proj.weight"), (Shape{14336, 4096}));
  EXPECT_EQ(plan("llama-3-8b").hf_config().count("rope_scaling"), 0u);

  // Phi-3-mini-4k: 3.82 B parameters with q/k/v and gate/up fused as its checkpoints are.
  const SynthPlan ph = plan("phi-3-mini-4k");
  const auto lp = shapes_of(ph);
  EXPECT_EQ(lp.at("model.layers.31.self_attn.qkv_proj.weight"), (Shape{9216, 3072}));
  EXPECT_EQ(lp.at("model.layers.31.mlp.gate_up_proj.weight"), (Shape{16384, 3072}));
  EXPECT_EQ(lp.count("model.layers.0.self_attn.q_proj.weight"), 0u);
  EXPECT_EQ(ph.parameter_count(), 3821079552u);
  EXPECT_EQ(ph.hf_config()["model_type"], "phi3");
  EXPECT_EQ(ph.hf_config()["sliding_window"], 2047);

  const SynthPlan q = plan("qwen2.5-0.5b");
  const auto lq = shapes_of(q);
  EXPECT_EQ(lq.at("model.embed_tokens.weight"), (Shape{151936, 896}));
  EXPECT_EQ(lq.at("model.layers.23.self_attn.q_proj.bias"), (Shape{896}));
  EXPECT_EQ(lq.at("model.layers.23.self_attn.k_proj.weight"), (Shape{128, 896}));
  EXPECT_EQ(lq.at("model.layers.23.mlp.up_proj.weight"), (Shape{4864, 896}));
  EXPECT_EQ(q.hf_config()["model_type"], "qwen2");
  EXPECT_EQ(q.hf_config()["rope_theta"], 1e6);

  // GPT-2 XL as GPT2LMHeadModel stores it: Conv1D [in, out], q/k/v in c_attn.
  const SynthPlan g = plan("gpt2-xl");
  const auto lg = shapes_of(g);
  EXPECT_EQ(lg.at("transformer.wpe.weight"), (Shape{1024, 1600}));
  EXPECT_EQ(lg.at("transformer.h.47.attn.c_attn.weight"), (Shape{1600, 4800}));
  EXPECT_EQ(lg.at("transformer.h.47.mlp.c_fc.weight"), (Shape{1600, 6400}));
  EXPECT_EQ(lg.at("transformer.h.47.mlp.c_proj.weight"), (Shape{6400, 1600}));
  EXPECT_EQ(g.hf_config()["architectures"][0], "GPT2LMHeadModel");
  EXPECT_EQ(g.hf_config()["n_head"], 25);
  EXPECT_EQ(g.cfg.model_type, "gpt2");

  SynthOptions o;
  o.shape = "llama-3-8b";
  o.layers = 2;
  EXPECT_EQ(plan_synth_model(o).tensors.size(), 1 + 2 * 9 + 2u);
}

TEST(SynthModel, RefusesUnknownShapesAndImpossibleOptions) {
  EXPECT_THROW(plan("llama-4"), Error);
  EXPECT_THROW(plan("tiny", 0, 9), Error);  // more than dim / 8 = 8 outlier channels
  EXPECT_THROW(plan("tiny", 0, -1), Error);
}

TEST(SynthModel, ValuesDoNotDependOnHowTheTensorIsSplit) {
  const SynthPlan p = plan("tiny", 11);
  for (size_t t : {size_t(0), size_t(2), p.tensors.size() - 1}) {
    const int64_t n = p.tensors[t].numel();
    std::vector<uint16_t> whole(static_cast<size_t>(n)), pieces(static_cast<size_t>(n));
    synth_values(p, t, 0, n, whole.data());
    for (int64_t at = 0, step = 1; at < n; at += step, step = step * 3 + 1)  // odd starts too
      synth_values(p, t, at, std::min(step, n - at), pieces.data() + at);
    EXPECT_EQ(whole, pieces) << p.tensors[t].name;
  }
}

TEST(SynthModel, PlantsOutliersInTheNormGainsAndEmbeddingColumns) {
  const SynthPlan p = plan("tiny", 5, 4);
  ASSERT_EQ(p.outlier_channels.size(), 4u);
  const auto gain = values_f32(p, "model.layers.1.post_attention_layernorm.weight");
  const auto emb = values_f32(p, "model.embed_tokens.weight");
  const int64_t D = p.cfg.dim;
  auto col_rms = [&](int64_t c) {
    double s = 0;
    for (int64_t r = 0; r < p.cfg.vocab_size; ++r)
      s += double(emb[size_t(r * D + c)]) * emb[size_t(r * D + c)];
    return std::sqrt(s / double(p.cfg.vocab_size));
  };
  const double root = std::sqrt(50.0);
  for (int64_t c = 0; c < D; ++c) {
    const bool planted = std::count(p.outlier_channels.begin(), p.outlier_channels.end(), c) > 0;
    EXPECT_NEAR(gain[size_t(c)], planted ? root : 1.0, planted ? 0.3 * root : 0.3) << c;
    EXPECT_NEAR(col_rms(c), planted ? 0.02 * root : 0.02, planted ? 0.03 : 0.003) << c;
  }
  // Different seeds plant different channels; none planted without outliers.
  EXPECT_NE(plan("tiny", 6, 4).outlier_channels, p.outlier_channels);
  EXPECT_TRUE(plan("tiny", 5, 0).outlier_channels.empty());
}

// Saved again as a Hugging Face directory, a bf16 model says so in config.json (transformers
// reads torch_dtype to pick the dtype it loads in); an f32 model built in memory says f32.
TEST(SynthModel, SavedConfigNamesTheWeightsDtype) {
  const fs::path dir = fresh_temp_dir();
  write_synth_model(plan("tiny", 3), (dir / "a").string());
  const LlamaModel m = load_llama(open_model_file((dir / "a").string()));
  save_llama_hf(m, (dir / "b").string());
  EXPECT_EQ(nlohmann::json::parse(read_bytes(dir / "b" / "config.json"))["torch_dtype"], "bfloat16");
  save_llama_hf(test::random_llama(test::tiny_config(), 3), (dir / "c").string());
  EXPECT_EQ(nlohmann::json::parse(read_bytes(dir / "c" / "config.json"))["torch_dtype"], "float32");
}

TEST(SynthModel, TinyLoadsRunsAndIsDeterministic) {
  const fs::path dir = fresh_temp_dir();
  const SynthPlan p = plan("tiny", 7);
  write_synth_model(p, (dir / "a").string());
  write_synth_model(p, (dir / "b").string());
  write_synth_model(plan("tiny", 8), (dir / "c").string());
  EXPECT_EQ(read_bytes(dir / "a" / "model.safetensors"),
            read_bytes(dir / "b" / "model.safetensors"));
  EXPECT_NE(read_bytes(dir / "a" / "model.safetensors"),
            read_bytes(dir / "c" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / ("a.partial-" + std::to_string(getpid()))));

  const ModelFile f = open_model_file((dir / "a").string());
  EXPECT_EQ(f.format, ModelFormat::HFDirectory);
  EXPECT_EQ(f.tensors.size(), p.tensors.size());
  for (const Tensor& t : f.tensors) EXPECT_EQ(t.dtype(), DType::BF16) << t.name();
  const LlamaModel m = load_llama(f);
  EXPECT_EQ(m.cfg.dim, 64);
  EXPECT_EQ(m.cfg.hidden_dim, 192);
  EXPECT_EQ(m.cfg.n_layers, 2);
  EXPECT_EQ(m.cfg.n_heads, 4);
  EXPECT_EQ(m.cfg.n_kv_heads, 2);
  EXPECT_EQ(m.cfg.head_dim, 16);
  EXPECT_EQ(m.cfg.vocab_size, 512);
  EXPECT_EQ(m.parameter_count(), p.parameter_count());

  const auto ids = load_tokenizer(f)->encode("Synthetic weights, real shapes.", true);
  KVCache cache(m.cfg, int64_t(ids.size()));
  std::vector<float> logits(ids.size() * size_t(m.cfg.vocab_size));
  llama_forward(m, ids, cache, logits.data());
  double sum = 0, sq = 0;
  for (float v : logits) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v, sq += double(v) * v;
  }
  const double mean = sum / double(logits.size());
  const double sd = std::sqrt(sq / double(logits.size()) - mean * mean);
  EXPECT_GT(sd, 0.05);  // not a flat distribution
  EXPECT_LT(sd, 20.0);  // nor a saturated one
}

TEST(SynthModel, CancelOrAnOccupiedDirectoryLeavesNothing) {
  const fs::path dir = fresh_temp_dir();
  CancelToken cancel;
  cancel.cancel();
  EXPECT_THROW(write_synth_model(plan("tiny"), (dir / "m").string(), {}, &cancel), Cancelled);
  fs::create_directories(dir / "full");
  mcw::test::write_bytes(dir / "full" / "keep.txt", "x");
  EXPECT_THROW(write_synth_model(plan("tiny"), (dir / "full").string()), Error);
  std::vector<fs::path> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename());
  EXPECT_EQ(left, std::vector<fs::path>{"full"});
  EXPECT_TRUE(fs::exists(dir / "full" / "keep.txt"));
}
