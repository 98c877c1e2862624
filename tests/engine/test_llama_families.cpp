// A saved llama-family model says the family it came from where that family's config can
// hold it (LlamaConfig::hf_model_type).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/compress/calibrate.h"
#include "engine/compress/compress_llama.h"
#include "engine/core/error.h"
#include "engine/io/gguf.h"
#include "engine/io/safetensors.h"
#include "engine/export/gguf_export.h"
#include "engine/model/llama_save.h"
#include "engine/model/llama_tensors.h"
#include "llama_reference.h"
#include "compress_test_util.h"
#include "llama_test_util.h"
#include "phi3_writer.h"

namespace mcw {
namespace {

const std::vector<int32_t> kTokens = {1, 5, 9, 2, 30, 7, 7, 12};

nlohmann::json saved_config(const LlamaModel& m, const std::string& dir) {
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(m, dir, tok);
  return nlohmann::json::parse(std::ifstream(dir + "/config.json"));
}

TEST(LlamaFamilies, AQwen2StaysAQwen2WhenSaved) {
  const std::string dir = testing::TempDir() + "/families_qwen2";
  LlamaConfig c = test::tiny_config(4, 2, /*tied=*/true);
  c.model_type = "qwen2", c.qkv_bias = true;
  const LlamaModel m = test::random_llama(c, 7);
  const nlohmann::json j = saved_config(m, dir);
  EXPECT_EQ(j["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(j["model_type"], "qwen2");
  EXPECT_FALSE(j.contains("attention_bias"));  // Qwen2's q/k/v biases are implied
  EXPECT_EQ(j["use_sliding_window"], false);
  const LlamaModel back = load_llama(dir);
  EXPECT_EQ(back.cfg.model_type, "qwen2");
  EXPECT_TRUE(back.cfg.qkv_bias);
  EXPECT_FALSE(back.cfg.o_bias);  // no zero o_proj bias was written beside it
  EXPECT_EQ(test::engine_logits(back, kTokens), test::engine_logits(m, kTokens));

  // A windowed Qwen2 windows every layer from layer 0 on, and reads back so.
  LlamaModel w = m;
  w.cfg.sliding_window = 4;
  const nlohmann::json jw = saved_config(w, dir);
  EXPECT_EQ(jw["use_sliding_window"], true);
  EXPECT_EQ(jw["max_window_layers"], 0);
  EXPECT_EQ(load_llama(dir).cfg.sliding_window, 4);
  std::filesystem::remove_all(dir);
}

// GGUF: a Qwen2 as llama.cpp's qwen2 architecture (biases, rows in HF order); with output
// biases as its llama architecture, whose q/k rows and biases are interleaved. Either reads
// back to the same function.
TEST(LlamaFamilies, GgufKeepsTheArchitectureAndTheBiases) {
  const std::string path = testing::TempDir() + "/families.gguf";
  LlamaConfig c = test::tiny_config(4, 2, /*tied=*/true);
  c.model_type = "qwen2", c.qkv_bias = true;
  LlamaModel m = test::random_llama(c, 9);
  save_llama_gguf(m, path, DType::F32);
  LlamaModel back = load_llama(path);
  EXPECT_EQ(back.cfg.model_type, "qwen2");
  EXPECT_EQ(test::engine_logits(back, kTokens), test::engine_logits(m, kTokens));

  m.cfg.o_bias = true;
  for (LlamaLayer& L : m.layers) {
    L.bo = Tensor::zeros(DType::F32, {c.dim}, "bo");
    L.bo.mutable_as<float>()[1] = -0.5f;
  }
  save_llama_gguf(m, path, DType::F32);
  back = load_llama(path);
  EXPECT_EQ(back.cfg.model_type, "llama");
  EXPECT_TRUE(back.cfg.qkv_bias && back.cfg.o_bias);
  const auto want = test::engine_logits(m, kTokens), got = test::engine_logits(back, kTokens);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5f) << i;
  std::filesystem::remove(path);
}

// Structured pruning's compensation biases on o_proj/down_proj have no place in Qwen2's
// config: the model is written as the Llama with attention_bias and mlp_bias it then is.
TEST(LlamaFamilies, AQwen2WithOutputBiasesIsWrittenAsALlama) {
  const std::string dir = testing::TempDir() + "/families_qwen2_biases";
  LlamaConfig c = test::tiny_config(4, 2, /*tied=*/true);
  c.model_type = "qwen2", c.qkv_bias = true, c.o_bias = true;
  LlamaModel m = test::random_llama(c, 8);
  for (LlamaLayer& L : m.layers) L.bo = Tensor::zeros(DType::F32, {c.dim}, "bo");
  m.layers[0].bo.mutable_as<float>()[3] = 0.25f;
  for (auto& [name, t] : m.named_tensors()) t->set_name(name);
  const nlohmann::json j = saved_config(m, dir);
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["attention_bias"], true);
  const LlamaModel back = load_llama(dir);
  EXPECT_TRUE(back.cfg.o_bias);
  EXPECT_EQ(test::engine_logits(back, kTokens), test::engine_logits(m, kTokens));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mcw

namespace mcw {
namespace {

// The tensor table (llama_tensors.h) is what the loader, named_tensors and calibration read.
TEST(LlamaTensorTable, NamesParseBackToTheirRowAndLayer) {
  for (const BlockTensor& t : llama_block_tensors()) {
    int64_t layer = -1;
    EXPECT_EQ(find_block_tensor(block_tensor_name(17, t), &layer), &t) << t.hf;
    EXPECT_EQ(layer, 17);
    EXPECT_EQ(&block_tensor(t.role), &t);
  }
  for (const char* bad :
       {"model.layers.3.mlp.nope.weight", "model.layers..mlp.up_proj.weight",
        "model.layers.-1.mlp.up_proj.weight", "model.layers.3", "model.norm.weight",
        "layers.3.mlp.up_proj.weight", "model.layers.3x.mlp.up_proj.weight"})
    EXPECT_EQ(find_block_tensor(bad), nullptr) << bad;
}

TEST(LlamaTensorTable, TheModelsTensorsAndGroupsComeFromTheTable) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.qkv_bias = true, c.down_bias = true;
  LlamaModel m = test::random_llama(c, 3);
  for (LlamaLayer& L : m.layers) L.b_down = Tensor::zeros(DType::F32, {c.dim});
  size_t block_tensors = 0, linears = 0;
  for (const auto& [name, t] : m.named_tensors()) {
    int64_t layer = -1;
    const BlockTensor* row = find_block_tensor(name, &layer);
    if (!row) continue;
    ++block_tensors;
    EXPECT_TRUE(row->present(c)) << name;
    EXPECT_EQ(t->shape(), block_tensor_shape(c, *row, 0)) << name;
    EXPECT_EQ(t, &(m.layers[size_t(layer)].*row->member)) << name;
    linears += row->linear();
  }
  EXPECT_EQ(block_tensors, size_t(c.n_layers) * 13);  // 9 always, q/k/v and down biases, no o bias
  // Calibration's groups: the four inputs of every block in the order it runs them, each
  // linear once, with its input width.
  const std::vector<LinearGroup> groups = linear_groups(m);
  ASSERT_EQ(groups.size(), size_t(c.n_layers) * 4);
  size_t grouped = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_EQ(groups[i].input, kBlockInputs[i % 4]);
    EXPECT_EQ(groups[i].layer, int64_t(i / 4));
    for (const std::string& n : groups[i].names) {
      const BlockTensor* row = find_block_tensor(n);
      ASSERT_NE(row, nullptr) << n;
      EXPECT_EQ(row->input, groups[i].input) << n;
      EXPECT_EQ(width(c, row->cols, groups[i].layer), groups[i].in_features) << n;
      ++grouped;
    }
  }
  EXPECT_EQ(grouped, linears);
  EXPECT_EQ(groups[0].names.size(), 3u);  // q, k, v
  EXPECT_EQ(groups[2].names.size(), 2u);  // gate, up
}

}  // namespace
}  // namespace mcw

namespace mcw {
namespace {

// llama.cpp's phi3 architecture: attn_qkv and ffn_up (gate then up) fused, rows in HF's
// rotate-half order (no interleaving), keys under phi3.*.
TEST(LlamaFamilies, Phi3GgufLoadsItsFusedTensors) {
  const std::string path = testing::TempDir() + "/families_phi3.gguf";
  const LlamaModel m = test::random_llama(test::tiny_config(4, 2), 14);
  const LlamaConfig& c = m.cfg;
  std::vector<GGUFKeyValue> kv;
  auto u32 = [&](const std::string& k, int64_t v) { kv.push_back({"phi3." + k, uint32_t(v)}); };
  kv.push_back({"general.architecture", std::string("phi3")});
  u32("context_length", c.max_seq_len), u32("embedding_length", c.dim), u32("feed_forward_length", c.hidden_dim);
  u32("block_count", c.n_layers), u32("attention.head_count", c.n_heads), u32("attention.head_count_kv", c.n_kv_heads);
  kv.push_back({"phi3.attention.layer_norm_rms_epsilon", float(c.rms_eps)});
  kv.push_back({"phi3.rope.freq_base", float(c.rope_theta)});
  std::vector<Tensor> ts;
  auto add = [&](const Tensor& t, const std::string& name) { ts.push_back(gguf_tensor_from_f32(t, name, DType::F32)); };
  add(m.tok_embd, "token_embd.weight");
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LlamaLayer& L = m.layers[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    add(L.attn_norm, p + "attn_norm.weight");
    add(test::stacked({&L.wq, &L.wk, &L.wv}, "qkv"), p + "attn_qkv.weight");
    add(L.wo, p + "attn_output.weight");
    add(L.ffn_norm, p + "ffn_norm.weight");
    add(test::stacked({&L.w_gate, &L.w_up}, "gate_up"), p + "ffn_up.weight");
    add(L.w_down, p + "ffn_down.weight");
  }
  add(m.out_norm, "output_norm.weight");
  add(m.output, "output.weight");
  write_gguf(path, kv, ts);
  const LlamaModel back = load_llama(path);
  EXPECT_EQ(back.cfg.model_type, "phi3");
  const auto want = test::engine_logits(m, kTokens), got = test::engine_logits(back, kTokens);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6f) << i;
  std::filesystem::remove(path);
}

// MCW's own Phi-3 export: the fused tensors and LongRoPE's factors and keys as
// convert_hf_to_gguf writes them, read back to the same model; attn_qkv typed as llama.cpp
// types an attn_v.
TEST(LlamaFamilies, Phi3ExportsToGgufWithItsLongRope) {
  const std::string path = testing::TempDir() + "/families_phi3_export.gguf";
  LlamaConfig c = test::tiny_config(4, 4);
  c.model_type = "phi3";
  c.sliding_window = 6;
  c.max_seq_len = 64;
  for (int64_t i = 0; i < c.head_dim / 2; ++i)
    c.long_rope.short_factor.push_back(1.0 + 0.5 * double(i)), c.long_rope.long_factor.push_back(4.0 + i);
  c.long_rope.attention_factor = 1.25, c.long_rope.original_max_position = 16;
  const LlamaModel m = test::random_llama(c, 21);
  save_llama_gguf(m, path);
  const GGUFFile f = read_gguf(path);
  EXPECT_EQ(f.get_string("general.architecture"), "phi3");
  std::set<std::string> names;
  for (const Tensor& t : f.tensors) names.insert(t.name());
  for (const char* n : {"blk.1.attn_qkv.weight", "blk.0.ffn_up.weight", "rope_factors_long.weight",
                        "rope_factors_short.weight"})
    EXPECT_TRUE(names.count(n)) << n;
  for (const char* n : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_gate.weight"})
    EXPECT_FALSE(names.count(n)) << n;
  const LlamaModel back = load_llama(path);
  EXPECT_EQ(back.cfg.model_type, "phi3");
  EXPECT_EQ(back.cfg.sliding_window, 6);
  EXPECT_EQ(back.cfg.long_rope.short_factor, c.long_rope.short_factor);
  EXPECT_EQ(back.cfg.long_rope.long_factor, c.long_rope.long_factor);
  EXPECT_EQ(back.cfg.long_rope.attention_factor, 1.25);
  EXPECT_EQ(back.cfg.long_rope.original_max_position, 16);
  EXPECT_EQ(test::engine_logits(back, kTokens), test::engine_logits(m, kTokens));

  GgufTensorPlace qkv, v;
  qkv.role = GgufTensorRole::AttnQkv, v.role = GgufTensorRole::AttnV;
  for (int l = 0; l < 32; ++l) {
    qkv.layer = v.layer = l, qkv.n_layers = v.n_layers = 32, qkv.cols = v.cols = 3072;
    EXPECT_EQ(gguf_tensor_type(*find_gguf_file_type("Q4_K_M"), qkv), gguf_tensor_type(*find_gguf_file_type("Q4_K_M"), v));
  }
  qkv.layer = 0;
  EXPECT_EQ(gguf_tensor_type(*find_gguf_file_type("Q4_K_M"), qkv), DType::Q6_K);

  // Written as a Llama (compensation biases), LongRoPE has no place in llama.cpp's file.
  LlamaModel biased = m;
  biased.cfg.down_bias = true;
  for (LlamaLayer& L : biased.layers) L.b_down = Tensor::zeros(DType::F32, {c.dim}, "");
  EXPECT_THROW(save_llama_gguf(biased, path), Error);
  std::filesystem::remove(path);
}

TEST(LlamaFamilies, Phi3LoadsItsFusedProjectionsAsViewsAndCompresses) {
  const std::string dir = testing::TempDir() + "/families_phi3";
  LlamaConfig c = test::compress_config(2);
  c.sliding_window = 5;
  const LlamaModel m = test::random_llama(c, 11);
  test::write_phi3(m, dir);
  const LlamaModel phi3 = load_llama(dir);
  EXPECT_EQ(phi3.cfg.model_type, "phi3");
  EXPECT_EQ(phi3.cfg.sliding_window, 5);
  EXPECT_FALSE(phi3.layers[0].wk.writable());  // a view of the fused matrix in the file
  EXPECT_EQ(test::engine_logits(phi3, kTokens), test::engine_logits(m, kTokens));

  // Compression sees the llama block: the same codes as the unfused model's.
  const Recipe r = parse_recipe("stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n", "r");
  const auto calib = test::random_tokens(600, 12);
  const CompressionResult a = compress_llama(phi3, r, calib, test::calib_options(4, 64));
  const CompressionResult b = compress_llama(m, r, calib, test::calib_options(4, 64));
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].tensor.name, b.layers[i].tensor.name);
    EXPECT_EQ(a.layers[i].tensor.codes, b.layers[i].tensor.codes) << a.layers[i].tensor.name;
  }

  // Saved, it is a Phi-3 again: the fused matrices byte for byte as they were.
  const std::string again = dir + "-again";
  save_llama_hf(phi3, again);
  const SafetensorsFile src = read_safetensors(dir + "/model.safetensors");
  const SafetensorsFile out = read_safetensors(again + "/model.safetensors");
  ASSERT_EQ(out.tensors.size(), src.tensors.size());
  auto find = [](const SafetensorsFile& f, const std::string& name) -> const Tensor* {
    for (const Tensor& t : f.tensors)
      if (t.name() == name) return &t;
    return nullptr;
  };
  for (const Tensor& t : src.tensors) {
    const Tensor* o = find(out, t.name());
    ASSERT_NE(o, nullptr) << t.name();
    ASSERT_EQ(o->shape(), t.shape()) << t.name();
    EXPECT_EQ(std::memcmp(o->data(), t.data(), t.nbytes()), 0) << t.name();
  }
  const auto config = nlohmann::json::parse(std::ifstream(again + "/config.json"));
  EXPECT_EQ(config["architectures"][0], "Phi3ForCausalLM");
  EXPECT_EQ(config["sliding_window"], 5);
  EXPECT_FALSE(config.contains("attention_bias"));
  // With compensation biases (structured pruning) transformers' Phi-3 cannot hold it: it is
  // written as a Mistral (sliding window) with the parts apart.
  LlamaModel biased = phi3;
  biased.cfg.o_bias = true;
  for (LlamaLayer& L : biased.layers) L.bo = Tensor::zeros(DType::F32, {c.dim}, "");
  save_llama_hf(biased, again);
  EXPECT_EQ(load_llama(again).cfg.model_type, "mistral");
  EXPECT_NE(find(read_safetensors(again + "/model.safetensors"), "model.layers.1.self_attn.k_proj.weight"), nullptr);
  std::filesystem::remove_all(again);

  const Shape bad = {c.q_dim() + c.kv_dim(), c.dim};  // v's rows missing
  test::write_phi3(m, dir, &bad);
  try {
    load_llama(dir);
    FAIL() << "a short qkv_proj was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.self_attn.qkv_proj.weight"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mcw

namespace mcw {
namespace {

// Phi-3-128k / Phi-3.5's LongRoPE from config.json: the factors and the attention factor as
// transformers derives it, the logits against the naive reference, saved and read back.
TEST(LlamaFamilies, LongRopeAsTransformersComputesIt) {
  const std::string dir = testing::TempDir() + "/families_longrope";
  LlamaConfig c = test::tiny_config(4, 2);
  c.max_seq_len = 64;
  const LlamaModel base = test::random_llama(c, 13);
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(base, dir, tok);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
  j["max_position_embeddings"] = 256;  // a Llama config may carry LongRoPE as well
  j["original_max_position_embeddings"] = 16;
  std::vector<double> shorts, longs;
  for (int64_t i = 0; i < c.head_dim / 2; ++i) shorts.push_back(1.0 + 0.7 * double(i)), longs.push_back(2.0 + i);
  j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", shorts}, {"long_factor", longs}};
  j.erase("attention_bias"), j.erase("mlp_bias");
  std::ofstream(dir + "/config.json") << j.dump();
  const LlamaModel m = load_llama(dir);
  ASSERT_TRUE(m.cfg.long_rope.enabled());
  EXPECT_EQ(m.cfg.long_rope.short_factor, shorts);
  EXPECT_DOUBLE_EQ(m.cfg.long_rope.attention_factor, std::sqrt(1 + std::log(256.0 / 16) / std::log(16.0)));
  const std::vector<int32_t> toks = {3, 17, 0, 36, 5, 5, 21, 9, 30, 1, 12, 4};
  const auto ref = test::reference_logits(m, toks);
  const auto got = test::engine_logits(m, toks);
  const size_t V = size_t(c.vocab_size);
  for (size_t t = 0; t < toks.size(); ++t)
    for (size_t i = 0; i < V; ++i) ASSERT_NEAR(got[t * V + i], ref[t][i], 1e-4) << t << " " << i;
  // The same model without the scaling computes something else (the test can fail).
  LlamaModel plain = m;
  plain.cfg.long_rope = {};
  EXPECT_NE(test::engine_logits(plain, toks), got);
  // A call reaching past the original context (16) uses the long factors for all of its
  // positions, as transformers' longrope update does; the reference computes the same.
  std::vector<int32_t> long_toks;
  for (int i = 0; i < 24; ++i) long_toks.push_back(int32_t((i * 7 + 3) % 37));
  const auto long_ref = test::reference_logits(m, long_toks);
  const auto long_got = test::engine_logits(m, long_toks);
  for (size_t t = 0; t < long_toks.size(); ++t)
    for (size_t i = 0; i < V; ++i)
      ASSERT_NEAR(long_got[t * V + i], long_ref[t][i], 1e-4) << t << " " << i;
  // ... which differ from the short ones on the first 16 positions (the test can fail).
  const auto first16 =
      test::engine_logits(m, std::vector<int32_t>(long_toks.begin(), long_toks.begin() + 16));
  EXPECT_GT(std::fabs(first16[5 * V] - long_got[5 * V]), 1e-4);

  save_llama_hf(m, dir, tok);  // written back with its factors
  const LlamaModel back = load_llama(dir);
  EXPECT_EQ(back.cfg.long_rope.long_factor, longs);
  EXPECT_DOUBLE_EQ(back.cfg.long_rope.attention_factor, m.cfg.long_rope.attention_factor);
  EXPECT_EQ(test::engine_logits(back, toks), got);

  j["rope_scaling"]["short_factor"] = std::vector<double>{1.0, 2.0};  // not head_dim / 2
  std::ofstream(dir + "/config.json") << j.dump();
  EXPECT_THROW(load_llama(dir), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mcw
