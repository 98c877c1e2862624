// The forward pass against the deliberately naive reference of llama_reference.h: plain
// loops in double, no shared kernels, attention recomputed from scratch for every position.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "engine/io/llama2c.h"
#include "engine/export/gguf_export.h"
#include "engine/model/llama_save.h"
#include "llama_reference.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

using test::engine_logits;
using test::reference_logits;
using test::Vec;

void expect_matches_reference(const LlamaModel& m, const std::vector<int32_t>& toks) {
  const auto ref = reference_logits(m, toks);
  const auto got = engine_logits(m, toks);
  const size_t V = size_t(m.cfg.vocab_size);
  for (size_t t = 0; t < toks.size(); ++t) {
    double scale = 0;
    for (double r : ref[t]) scale = std::max(scale, std::fabs(r));
    for (size_t i = 0; i < V; ++i)
      ASSERT_NEAR(got[t * V + i], ref[t][i], 1e-5 * scale) << "t=" << t << " i=" << i;
  }
}

const std::vector<int32_t> kTokens = {3, 17, 0, 36, 5, 5, 21, 9, 30, 1, 12};

}  // namespace

TEST(LlamaForward, MatchesNaiveReferenceAcrossHeadRatios) {
  for (auto [h, kv] : {std::pair{4, 4}, {4, 2}, {4, 1}, {6, 3}}) {
    SCOPED_TRACE(testing::Message() << h << " heads, " << kv << " kv heads");
    expect_matches_reference(test::random_llama(test::tiny_config(h, kv), 42 + h + kv), kTokens);
  }
}

// A prefill long enough for the GEMM attention (16 tokens and more, query tiles of 128):
// 150 tokens, two tiles, grouped-query heads, with and without a sliding window, against
// the naive reference; and a second chunk after a cached prefix (positions p0 > 0).
TEST(LlamaForward, LongPrefillAttentionMatchesTheReference) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.max_seq_len = 256;
  std::vector<int32_t> toks(150);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = int32_t((i * 7 + 3) % 37);
  for (int64_t window : {0, 40}) {
    SCOPED_TRACE(window);
    c.sliding_window = window;
    const LlamaModel m = test::random_llama(c, 11);
    expect_matches_reference(m, toks);
    // 20 tokens one by one (the per-pair path), then 130 at once from position 20.
    const auto full = engine_logits(m, toks);
    KVCache cache(m.cfg, 256);
    const size_t V = size_t(c.vocab_size);
    std::vector<float> step(V), rest(130 * V);
    for (size_t t = 0; t < 20; ++t)
      llama_forward(m, std::span(toks).subspan(t, 1), cache, nullptr, step.data());
    llama_forward(m, std::span(toks).subspan(20, 130), cache, rest.data());
    for (size_t i = 0; i < rest.size(); ++i)
      ASSERT_NEAR(rest[i], full[20 * V + i], 1e-4f * (1 + std::fabs(full[20 * V + i]))) << i;
  }
}

TEST(LlamaForward, TiedEmbeddingsAndQkvBias) {
  LlamaConfig c = test::tiny_config(4, 2, /*tied=*/true);
  c.qkv_bias = true;
  c.rope_theta = 500000;
  expect_matches_reference(test::random_llama(c, 7), kTokens);
}

// Mistral's sliding window: against the reference's mask, in prefill and in cached decode
// (where the window moves past the cache's first rows), and through config.json.
TEST(LlamaForward, SlidingWindowAttention) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.sliding_window = 4;
  const LlamaModel m = test::random_llama(c, 31);
  expect_matches_reference(m, kTokens);
  const auto full = engine_logits(m, kTokens);
  const size_t V = size_t(c.vocab_size);
  KVCache cache(c, 32);
  std::vector<float> step(V);
  for (size_t t = 0; t < kTokens.size(); ++t) {
    llama_forward(m, std::span(kTokens).subspan(t, 1), cache, nullptr, step.data());
    for (size_t i = 0; i < V; ++i) ASSERT_NEAR(step[i], full[t * V + i], 1e-5) << "t=" << t;
  }
  LlamaModel plain = m;  // the window matters: without it the late positions differ
  plain.cfg.sliding_window = 0;
  EXPECT_NE(engine_logits(plain, kTokens), full);

  const std::string dir = testing::TempDir() + "/fwd_mistral";
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(m, dir, tok);
  const LlamaModel back = load_llama(dir);
  EXPECT_EQ(back.cfg.sliding_window, 4);
  EXPECT_EQ(engine_logits(back, kTokens), full);
  const std::string gg = testing::TempDir() + "/fwd_mistral.gguf";
  save_llama_gguf(m, gg, DType::F32);
  EXPECT_EQ(load_llama(gg).cfg.sliding_window, 4);
  std::filesystem::remove(gg);

  // Which configs mean a window: Mistral v0.1's integer, not v0.2's null, not Qwen2's value
  // without use_sliding_window; Qwen2's only from layer max_window_layers on (default 28).
  auto window_of = [&](const std::string& type, const nlohmann::json& sw, const nlohmann::json& use,
                       const nlohmann::json& first = nullptr) {
    nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
    j["model_type"] = type;
    j["sliding_window"] = sw;
    if (use.is_null()) j.erase("use_sliding_window");
    else j["use_sliding_window"] = use;
    if (first.is_null()) j.erase("max_window_layers");
    else j["max_window_layers"] = first;
    std::ofstream(dir + "/config.json") << j.dump();
    return llama_config_from(open_model_file(dir)).sliding_window;
  };
  EXPECT_EQ(window_of("mistral", 4096, nullptr), 4096);
  EXPECT_EQ(window_of("mistral", nullptr, nullptr), 0);
  EXPECT_EQ(window_of("qwen2", 4096, false), 0);
  EXPECT_EQ(window_of("qwen2", 4096, nullptr), 0);
  EXPECT_EQ(window_of("qwen2", 4096, true, 0), 4096);
  EXPECT_EQ(window_of("qwen2", 4096, true), 0);     // layers 28 and on: none of these two
  EXPECT_EQ(window_of("qwen2", 4096, true, 2), 0);  // the same, said
  EXPECT_THROW(window_of("qwen2", 4096, true, 1), Error);  // one layer of two: not expressible
  std::filesystem::remove_all(dir);
}

TEST(LlamaForward, KvCacheDecodeEqualsFullRecompute) {
  const LlamaModel m = test::random_llama(test::tiny_config(4, 2), 3);
  const auto full = engine_logits(m, kTokens);
  const size_t V = size_t(m.cfg.vocab_size);
  KVCache cache(m.cfg, 32);
  // Prefill the first 4 tokens at once, then decode the rest one at a time.
  std::vector<float> prefill(4 * V), step(V);
  llama_forward(m, std::span(kTokens).first(4), cache, prefill.data());
  for (size_t i = 0; i < 4 * V; ++i) ASSERT_NEAR(prefill[i], full[i], 1e-5);
  for (size_t t = 4; t < kTokens.size(); ++t) {
    llama_forward(m, std::span(kTokens).subspan(t, 1), cache, nullptr, step.data());
    for (size_t i = 0; i < V; ++i) ASSERT_NEAR(step[i], full[t * V + i], 1e-5) << "t=" << t;
  }
}

TEST(LlamaForward, RejectsOutOfRangeTokensAndFullCache) {
  const LlamaModel m = test::random_llama(test::tiny_config(), 1);
  KVCache cache(m.cfg, 4);
  std::vector<float> out(size_t(m.cfg.vocab_size) * 8);
  const std::vector<int32_t> bad = {1, 99};
  EXPECT_THROW(llama_forward(m, bad, cache, out.data()), Error);
  const std::vector<int32_t> many(5, 1);
  EXPECT_THROW(llama_forward(m, many, cache, out.data()), Error);
}

TEST(LlamaForward, RotaryPermutationRoundTrips) {
  std::mt19937 rng(5);
  const Tensor w = test::random_tensor({16, 3}, rng, 1.0f);
  const Tensor back = permute_rotary_rows(permute_rotary_rows(w, 2, 8), 2, 8, /*inverse=*/true);
  for (int64_t i = 0; i < w.numel(); ++i) EXPECT_EQ(back.as<float>()[i], w.as<float>()[i]);
  // Interleaved row 2j+c of head h lands at row c*4+j of that head.
  const Tensor p = permute_rotary_rows(w, 2, 8);
  EXPECT_EQ(p.as<float>()[(8 + 1 * 4 + 2) * 3], w.as<float>()[(8 + 2 * 2 + 1) * 3]);
}

// The same weights written as llama2.c (interleaved rotary layout) load back to
// identical logits.
TEST(LlamaForward, Llama2cFileGivesIdenticalLogits) {
  for (bool tied : {true, false}) {
    LlamaConfig c = test::tiny_config(4, 2, tied);
    const LlamaModel m = test::random_llama(c, 11);
    const std::string path = testing::TempDir() + "/fwd_llama2c.bin";
    save_llama_llama2c(m, path);
    LlamaModel loaded = load_llama(path);
    loaded.cfg.rms_eps = c.rms_eps;  // llama2.c files do not store epsilon
    EXPECT_EQ(engine_logits(loaded, kTokens), engine_logits(m, kTokens));
    std::filesystem::remove(path);
  }
}

// The same weights saved as a HF directory and as GGUF (F32) load back to identical
// logits; GGUF Q8_0 stays close.
TEST(LlamaForward, HfDirectoryAndGgufGiveIdenticalLogits) {
  const LlamaModel m = test::random_llama(test::tiny_config(4, 2), 21);
  const std::string dir = testing::TempDir() + "/fwd_hf";
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(m, dir, tok);
  const LlamaModel hf = load_llama(dir);
  EXPECT_EQ(engine_logits(hf, kTokens), engine_logits(m, kTokens));

  const std::string gg = testing::TempDir() + "/fwd.gguf";
  save_llama_gguf(m, gg, DType::F32);
  LlamaModel g = load_llama(gg);
  EXPECT_EQ(engine_logits(g, kTokens), engine_logits(m, kTokens));
  std::filesystem::remove_all(dir);
  std::filesystem::remove(gg);
}
