// A deliberately naive llama forward pass for tests: plain loops in double, attention
// recomputed from scratch for every position, o_proj/down_proj output biases, and the
// per-token int8 quantise-dequantise of linear inputs written out here (not the engine's).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/model/llama_model.h"

namespace mcw::test {

using Vec = std::vector<double>;

inline Vec ref_matvec(const Tensor& w, const Vec& x) {  // w [n, k] · x [k]
  const int64_t n = w.dim(0), k = w.dim(1);
  Vec y(size_t(n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) y[size_t(i)] += double(w.as<float>()[i * k + j]) * x[size_t(j)];
  return y;
}

inline void ref_add_bias(Vec& x, const Tensor& b) {
  if (b.empty()) return;
  for (size_t i = 0; i < x.size(); ++i) x[i] += b.as<float>()[i];
}

inline Vec ref_rmsnorm(const Vec& x, const Tensor& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double s = 1 / std::sqrt(ss / double(x.size()) + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * w.as<float>()[i];
  return y;
}

// Symmetric int8 of one token: scale max|x| / 127, codes rounded half away from zero.
inline Vec ref_int8(const Vec& x) {
  double m = 0;
  for (double v : x) m = std::max(m, std::fabs(v));
  const double s = m > 0 ? m / 127.0 : 1.0;
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = std::clamp(std::round(x[i] / s), -127.0, 127.0) * s;
  return y;
}

// Rotate-half RoPE; with LongRoPE as transformers computes it: inv_freq = 1 / (factor ·
// theta^(2i/d)) with the short factors, or the long ones when the sequence run in one call
// (`seq_len` positions) is longer than original_max_position; cos and sin multiplied by the
// attention factor.
inline void ref_rope(Vec& x, int64_t heads, int64_t hd, int64_t pos, double theta,
                     const LongRope& lr = {}, int64_t seq_len = 0) {
  const double m = lr.enabled() ? lr.attention_factor : 1.0;
  const bool long_factors = seq_len > lr.original_max_position;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i) {
      double f = std::pow(theta, -2.0 * double(i) / double(hd));
      if (lr.enabled()) f /= (long_factors ? lr.long_factor : lr.short_factor)[size_t(i)];
      const double a = double(pos) * f, cs = m * std::cos(a), sn = m * std::sin(a);
      double& x0 = x[size_t(h * hd + i)];
      double& x1 = x[size_t(h * hd + i + hd / 2)];
      const double r0 = x0 * cs - x1 * sn, r1 = x0 * sn + x1 * cs;
      x0 = r0, x1 = r1;
    }
}

// One decoder block over the hidden states x [T][dim] of one sequence (in place);
// `mask` is the ActInt8 bits of the linear inputs quantised to int8.
inline void reference_block(const LlamaConfig& c, const LlamaLayer& L, std::vector<Vec>& x,
                            int mask = 0) {
  const size_t T = x.size();
  auto in = [&](const Vec& v, int bit) { return (mask & bit) ? ref_int8(v) : v; };
  std::vector<Vec> q(T), k(T), v(T);
  for (size_t t = 0; t < T; ++t) {
    const Vec h = in(ref_rmsnorm(x[t], L.attn_norm, c.rms_eps), kActInt8Qkv);
    q[t] = ref_matvec(L.wq, h), k[t] = ref_matvec(L.wk, h), v[t] = ref_matvec(L.wv, h);
    ref_add_bias(q[t], L.bq), ref_add_bias(k[t], L.bk), ref_add_bias(v[t], L.bv);
    ref_rope(q[t], c.n_heads, c.head_dim, int64_t(t), c.rope_theta, c.long_rope, int64_t(T));
    ref_rope(k[t], c.n_kv_heads, c.head_dim, int64_t(t), c.rope_theta, c.long_rope, int64_t(T));
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
        // Mistral's sliding window, as transformers masks it: q − k >= window is unseen.
        if (c.sliding_window > 0 && int64_t(t - u) >= c.sliding_window) s[u] = -INFINITY;
        mx = std::max(mx, s[u]);
      }
      for (double& e : s) z += (e = std::exp(e - mx));
      for (size_t u = 0; u <= t; ++u)
        for (int64_t i = 0; i < c.head_dim; ++i)
          att[size_t(h * c.head_dim + i)] += s[u] / z * v[u][size_t(kvh * c.head_dim + i)];
    }
    Vec o = ref_matvec(L.wo, in(att, kActInt8O));
    ref_add_bias(o, L.bo);
    for (size_t i = 0; i < o.size(); ++i) x[t][i] += o[i];
  }
  for (size_t t = 0; t < T; ++t) {
    const Vec h = in(ref_rmsnorm(x[t], L.ffn_norm, c.rms_eps), kActInt8GateUp);
    Vec g = ref_matvec(L.w_gate, h);
    const Vec u = ref_matvec(L.w_up, h);
    for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
    Vec d = ref_matvec(L.w_down, in(g, kActInt8Down));
    ref_add_bias(d, L.b_down);
    for (size_t i = 0; i < d.size(); ++i) x[t][i] += d[i];
  }
}

// Logits [T][V]; `act_int8` (ActInt8 bits) overrides every layer's own mask when >= 0.
inline std::vector<Vec> reference_logits(const LlamaModel& m, const std::vector<int32_t>& toks,
                                         int act_int8 = -1) {
  const LlamaConfig& c = m.cfg;
  const size_t T = toks.size();
  std::vector<Vec> x(T);
  for (size_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < c.dim; ++i) x[t].push_back(m.tok_embd.as<float>()[toks[t] * c.dim + i]);
  for (const LlamaLayer& L : m.layers) reference_block(c, L, x, act_int8 >= 0 ? act_int8 : L.act_int8);
  std::vector<Vec> out(T);
  for (size_t t = 0; t < T; ++t)
    out[t] = ref_matvec(m.lm_head(), ref_rmsnorm(x[t], m.out_norm, c.rms_eps));
  return out;
}

// The engine's logits [T * V] of a fresh pass over `toks`.
inline std::vector<float> engine_logits(const LlamaModel& m, const std::vector<int32_t>& toks) {
  KVCache cache(m.cfg, int64_t(toks.size()));
  std::vector<float> logits(toks.size() * size_t(m.cfg.vocab_size));
  llama_forward(m, toks, cache, logits.data());
  return logits;
}

// A copy that shares no bytes with `m` (LlamaModel copies share tensor storage).
inline LlamaModel deep_copy(const LlamaModel& m) {
  LlamaModel c = m;
  for (auto& [name, t] : c.named_tensors()) *t = Tensor::from_f32(t->to_f32(), t->shape(), name);
  return c;
}

}  // namespace mcw::test
