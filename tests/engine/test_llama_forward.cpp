// The forward pass against a deliberately naive reference: plain loops in double, no
// shared kernels, attention recomputed from scratch for every position.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/io/llama2c.h"
#include "engine/model/llama_save.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

using Vec = std::vector<double>;

Vec matvec(const Tensor& w, const Vec& x) {  // w [n, k] · x [k]
  const int64_t n = w.dim(0), k = w.dim(1);
  Vec y(size_t(n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) y[size_t(i)] += double(w.as<float>()[i * k + j]) * x[size_t(j)];
  return y;
}

Vec rmsnorm(const Vec& x, const Tensor& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double s = 1 / std::sqrt(ss / double(x.size()) + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * w.as<float>()[i];
  return y;
}

void rope(Vec& x, int64_t heads, int64_t hd, int64_t pos, double theta) {
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double f = std::pow(theta, -2.0 * double(i) / double(hd)), a = double(pos) * f;
      double& x0 = x[size_t(h * hd + i)];
      double& x1 = x[size_t(h * hd + i + hd / 2)];
      const double r0 = x0 * std::cos(a) - x1 * std::sin(a), r1 = x0 * std::sin(a) + x1 * std::cos(a);
      x0 = r0, x1 = r1;
    }
}

void add_bias(Vec& x, const Tensor& b) {
  if (b.empty()) return;
  for (size_t i = 0; i < x.size(); ++i) x[i] += b.as<float>()[i];
}

// Logits [T][V] of the whole sequence.
std::vector<Vec> reference_logits(const LlamaModel& m, const std::vector<int32_t>& toks) {
  const LlamaConfig& c = m.cfg;
  const size_t T = toks.size();
  std::vector<Vec> x(T);
  for (size_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < c.dim; ++i) x[t].push_back(m.tok_embd.as<float>()[toks[t] * c.dim + i]);
  for (const LlamaLayer& L : m.layers) {
    std::vector<Vec> q(T), k(T), v(T);
    for (size_t t = 0; t < T; ++t) {
      const Vec h = rmsnorm(x[t], L.attn_norm, c.rms_eps);
      q[t] = matvec(L.wq, h), k[t] = matvec(L.wk, h), v[t] = matvec(L.wv, h);
      add_bias(q[t], L.bq), add_bias(k[t], L.bk), add_bias(v[t], L.bv);
      rope(q[t], c.n_heads, c.head_dim, int64_t(t), c.rope_theta);
      rope(k[t], c.n_kv_heads, c.head_dim, int64_t(t), c.rope_theta);
    }
    for (size_t t = 0; t < T; ++t) {
      Vec att(size_t(c.q_dim()), 0.0);
      for (int64_t h = 0; h < c.n_heads; ++h) {
        const int64_t kvh = h / (c.n_heads / c.n_kv_heads);
        Vec s(t + 1);
        double mx = -1e300, z = 0;
        for (size_t u = 0; u <= t; ++u) {
          s[u] = 0;
          for (int64_t i = 0; i < c.head_dim; ++i)
            s[u] += q[t][size_t(h * c.head_dim + i)] * k[u][size_t(kvh * c.head_dim + i)];
          s[u] /= std::sqrt(double(c.head_dim));
          mx = std::max(mx, s[u]);
        }
        for (double& e : s) z += (e = std::exp(e - mx));
        for (size_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < c.head_dim; ++i)
            att[size_t(h * c.head_dim + i)] += s[u] / z * v[u][size_t(kvh * c.head_dim + i)];
      }
      const Vec o = matvec(L.wo, att);
      for (size_t i = 0; i < o.size(); ++i) x[t][i] += o[i];
    }
    for (size_t t = 0; t < T; ++t) {
      const Vec h = rmsnorm(x[t], L.ffn_norm, c.rms_eps);
      Vec g = matvec(L.w_gate, h);
      const Vec u = matvec(L.w_up, h);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      const Vec d = matvec(L.w_down, g);
      for (size_t i = 0; i < d.size(); ++i) x[t][i] += d[i];
    }
  }
  std::vector<Vec> out(T);
  for (size_t t = 0; t < T; ++t) out[t] = matvec(m.lm_head(), rmsnorm(x[t], m.out_norm, c.rms_eps));
  return out;
}

std::vector<float> run(const LlamaModel& m, const std::vector<int32_t>& toks) {
  KVCache cache(m.cfg, int64_t(toks.size()));
  std::vector<float> logits(toks.size() * size_t(m.cfg.vocab_size));
  llama_forward(m, toks, cache, logits.data());
  return logits;
}

void expect_matches_reference(const LlamaModel& m, const std::vector<int32_t>& toks) {
  const auto ref = reference_logits(m, toks);
  const auto got = run(m, toks);
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

TEST(LlamaForward, TiedEmbeddingsAndQkvBias) {
  LlamaConfig c = test::tiny_config(4, 2, /*tied=*/true);
  c.qkv_bias = true;
  c.rope_theta = 500000;
  expect_matches_reference(test::random_llama(c, 7), kTokens);
}

TEST(LlamaForward, KvCacheDecodeEqualsFullRecompute) {
  const LlamaModel m = test::random_llama(test::tiny_config(4, 2), 3);
  const auto full = run(m, kTokens);
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
    EXPECT_EQ(run(loaded, kTokens), run(m, kTokens));
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
  EXPECT_EQ(run(hf, kTokens), run(m, kTokens));

  const std::string gg = testing::TempDir() + "/fwd.gguf";
  save_llama_gguf(m, gg, DType::F32);
  LlamaModel g = load_llama(gg);
  EXPECT_EQ(run(g, kTokens), run(m, kTokens));
  std::filesystem::remove_all(dir);
  std::filesystem::remove(gg);
}
