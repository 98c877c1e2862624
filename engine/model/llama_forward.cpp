// The decoder's forward pass: batched over the tokens of one call (prefill), or one token
// at a time (decode), with keys/values kept in a KVCache.
#include <tbb/parallel_for.h>

#include <cmath>
#include <string>

#include "engine/core/error.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/ops.h"
#include "engine/model/llama_model.h"

namespace mcw {

KVCache::KVCache(const LlamaConfig& cfg, int64_t capacity)
    : cap_(capacity),
      kv_dim_(cfg.kv_dim()),
      k_(size_t(cfg.n_layers * capacity * cfg.kv_dim())),
      v_(size_t(cfg.n_layers * capacity * cfg.kv_dim())) {}

// Causal attention of T new queries (positions p0..p0+T-1) against cache rows 0..p0+t.
static void attention(const LlamaConfig& c, const float* q, KVCache& cache, int64_t layer,
                      int64_t p0, int64_t T, float* out) {
  const int64_t hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  tbb::parallel_for(int64_t(0), T * c.n_heads, [&](int64_t job) {
    const int64_t t = job / c.n_heads, h = job % c.n_heads, kvh = h / group;
    const int64_t n_keys = p0 + t + 1;
    const float* qh = q + t * c.q_dim() + h * hd;
    std::vector<float> score(static_cast<size_t>(n_keys));
    for (int64_t s = 0; s < n_keys; ++s) {
      const float* kh = cache.k(layer, s) + kvh * hd;
      float acc = 0;
      for (int64_t i = 0; i < hd; ++i) acc += qh[i] * kh[i];
      score[size_t(s)] = acc * scale;
    }
    softmax_row(score.data(), n_keys);
    float* oh = out + t * c.q_dim() + h * hd;
    std::fill(oh, oh + hd, 0.0f);
    for (int64_t s = 0; s < n_keys; ++s) {
      const float* vh = cache.v(layer, s) + kvh * hd;
      const float p = score[size_t(s)];
      for (int64_t i = 0; i < hd; ++i) oh[i] += p * vh[i];
    }
  });
}

void llama_forward(const LlamaModel& model, std::span<const int32_t> tokens, KVCache& cache,
                   float* logits, float* last_logits) {
  const LlamaConfig& c = model.cfg;
  const int64_t T = int64_t(tokens.size()), D = c.dim, H = c.hidden_dim;
  const int64_t Q = c.q_dim(), KV = c.kv_dim(), p0 = cache.size();
  if (T == 0) return;
  if (p0 + T > cache.capacity())
    throw Error("", "context of " + std::to_string(p0 + T) + " tokens exceeds the KV cache (" +
                        std::to_string(cache.capacity()) + ")");

  std::vector<float> x(size_t(T * D)), xn(size_t(T * D)), q(size_t(T * Q)), att(size_t(T * Q));
  std::vector<float> g(size_t(T * H)), u(size_t(T * H)), kv(size_t(T * KV) * 2);
  const float* embd = model.tok_embd.as<float>();
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = tokens[size_t(t)];
    if (id < 0 || id >= c.vocab_size)
      throw Error("", "token id " + std::to_string(id) + " is outside the vocabulary (" +
                          std::to_string(c.vocab_size) + ")");
    std::copy(embd + int64_t(id) * D, embd + (int64_t(id) + 1) * D, x.begin() + t * D);
  }
  const std::vector<float> inv_freq = rope_inv_freq(c);
  auto bias = [](const Tensor& b) { return b.empty() ? nullptr : b.as<float>(); };

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& L = model.layers[size_t(l)];
    rmsnorm_rows(x.data(), L.attn_norm.as<float>(), xn.data(), T, D, c.rms_eps);
    float* k = kv.data();
    float* v = kv.data() + T * KV;
    matmul_wt(xn.data(), L.wq.as<float>(), q.data(), T, Q, D, bias(L.bq));
    matmul_wt(xn.data(), L.wk.as<float>(), k, T, KV, D, bias(L.bk));
    matmul_wt(xn.data(), L.wv.as<float>(), v, T, KV, D, bias(L.bv));
    for (int64_t t = 0; t < T; ++t) {
      rope_row(q.data() + t * Q, c.n_heads, c.head_dim, p0 + t, inv_freq.data());
      rope_row(k + t * KV, c.n_kv_heads, c.head_dim, p0 + t, inv_freq.data());
      std::copy(k + t * KV, k + (t + 1) * KV, cache.k(l, p0 + t));
      std::copy(v + t * KV, v + (t + 1) * KV, cache.v(l, p0 + t));
    }
    attention(c, q.data(), cache, l, p0, T, att.data());
    matmul_wt(att.data(), L.wo.as<float>(), x.data(), T, D, Q, nullptr, /*accumulate=*/true);

    rmsnorm_rows(x.data(), L.ffn_norm.as<float>(), xn.data(), T, D, c.rms_eps);
    matmul_wt(xn.data(), L.w_gate.as<float>(), g.data(), T, H, D);
    matmul_wt(xn.data(), L.w_up.as<float>(), u.data(), T, H, D);
    silu_mul(g.data(), u.data(), T * H);
    matmul_wt(g.data(), L.w_down.as<float>(), x.data(), T, D, H, nullptr, /*accumulate=*/true);
  }
  cache.advance(T);

  const float* head = model.lm_head().as<float>();
  if (logits) {
    rmsnorm_rows(x.data(), model.out_norm.as<float>(), xn.data(), T, D, c.rms_eps);
    matmul_wt(xn.data(), head, logits, T, c.vocab_size, D);
  } else if (last_logits) {
    rmsnorm_rows(x.data() + (T - 1) * D, model.out_norm.as<float>(), xn.data(), 1, D, c.rms_eps);
    matmul_wt(xn.data(), head, last_logits, 1, c.vocab_size, D);
  }
}

}  // namespace mcw
