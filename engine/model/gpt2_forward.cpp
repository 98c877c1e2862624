// The GPT-2 forward pass: batched over the tokens of one call (prefill), or one token at a
// time (decode), with keys/values kept in a Gpt2Cache.
#include <tbb/parallel_for.h>

#include <cmath>
#include <string>

#include "engine/core/error.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/ops.h"
#include "engine/model/gpt2_model.h"

namespace mcw {

Gpt2Cache::Gpt2Cache(const Gpt2Config& cfg, int64_t capacity)
    : cap_(capacity),
      dim_(cfg.dim),
      k_(size_t(cfg.n_layers * capacity * cfg.dim)),
      v_(size_t(cfg.n_layers * capacity * cfg.dim)) {}

namespace {

// Causal attention of T new queries (rows of qkv [T, 3D], positions p0..p0+T-1) against
// cache rows 0..p0+t; out receives [T, D].
void attention(const Gpt2Config& c, const float* qkv, Gpt2Cache& cache, int64_t layer, int64_t p0,
               int64_t T, float* out) {
  const int64_t hd = c.head_dim(), D = c.dim;
  const float scale = c.scale_attn_weights ? float(1.0 / std::sqrt(double(hd))) : 1.0f;
  tbb::parallel_for(int64_t(0), T * c.n_heads, [&](int64_t job) {
    const int64_t t = job / c.n_heads, h = job % c.n_heads, n_keys = p0 + t + 1;
    const float* qh = qkv + t * 3 * D + h * hd;
    std::vector<float> score(static_cast<size_t>(n_keys));
    for (int64_t s = 0; s < n_keys; ++s) {
      const float* kh = cache.k(layer, s) + h * hd;
      float acc = 0;
      for (int64_t i = 0; i < hd; ++i) acc += qh[i] * kh[i];
      score[size_t(s)] = acc * scale;
    }
    softmax_row(score.data(), n_keys);
    float* oh = out + t * D + h * hd;
    std::fill(oh, oh + hd, 0.0f);
    for (int64_t s = 0; s < n_keys; ++s) {
      const float* vh = cache.v(layer, s) + h * hd;
      const float p = score[size_t(s)];
      for (int64_t i = 0; i < hd; ++i) oh[i] += p * vh[i];
    }
  });
}

// y [T, W.rows] (+)= x · Wᵀ + b
void linear(const Tensor& W, const Tensor& b, const float* x, int64_t T, float* y,
            bool accumulate = false) {
  matmul_wt(x, W.as<float>(), y, T, W.dim(0), W.dim(1), b.empty() ? nullptr : b.as<float>(),
            accumulate);
}

void activation(Gpt2Activation a, float* x, int64_t n) {
  if (a == Gpt2Activation::GeluTanh) {
    gelu_tanh(x, n);
  } else {
    gelu_erf(x, n);
  }
}

}  // namespace

void gpt2_forward(const Gpt2Model& model, std::span<const int32_t> tokens, Gpt2Cache& cache,
                  float* logits, float* last_logits) {
  const Gpt2Config& c = model.cfg;
  const int64_t T = int64_t(tokens.size()), D = c.dim, F = c.hidden_dim, p0 = cache.size();
  if (T == 0) return;
  if (p0 + T > c.n_positions)
    throw Error("", "context of " + std::to_string(p0 + T) + " tokens exceeds the model's " +
                        std::to_string(c.n_positions) + " positions (n_positions)");
  if (p0 + T > cache.capacity())
    throw Error("", "context of " + std::to_string(p0 + T) + " tokens exceeds the KV cache (" +
                        std::to_string(cache.capacity()) + ")");

  std::vector<float> x(size_t(T * D)), xn(size_t(T * D)), qkv(size_t(T * 3 * D));
  std::vector<float> att(size_t(T * D)), hidden(size_t(T * F));
  const float* wte = model.tok_embd.as<float>();
  const float* wpe = model.pos_embd.as<float>();
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = tokens[size_t(t)];
    if (id < 0 || id >= c.vocab_size)
      throw Error("", "token id " + std::to_string(id) + " is outside the vocabulary (" +
                          std::to_string(c.vocab_size) + ")");
    const float* e = wte + int64_t(id) * D;
    const float* p = wpe + (p0 + t) * D;
    for (int64_t i = 0; i < D; ++i) x[size_t(t * D + i)] = e[i] + p[i];
  }

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const Gpt2Layer& L = model.layers[size_t(l)];
    layernorm_rows(x.data(), L.ln1_w.as<float>(), L.ln1_b.as<float>(), xn.data(), T, D, c.ln_eps);
    linear(L.w_qkv, L.b_qkv, xn.data(), T, qkv.data());
    for (int64_t t = 0; t < T; ++t) {
      const float* row = qkv.data() + t * 3 * D;
      std::copy(row + D, row + 2 * D, cache.k(l, p0 + t));
      std::copy(row + 2 * D, row + 3 * D, cache.v(l, p0 + t));
    }
    attention(c, qkv.data(), cache, l, p0, T, att.data());
    linear(L.w_o, L.b_o, att.data(), T, x.data(), /*accumulate=*/true);
    layernorm_rows(x.data(), L.ln2_w.as<float>(), L.ln2_b.as<float>(), xn.data(), T, D, c.ln_eps);
    linear(L.w_up, L.b_up, xn.data(), T, hidden.data());
    activation(c.activation, hidden.data(), T * F);
    linear(L.w_down, L.b_down, hidden.data(), T, x.data(), /*accumulate=*/true);
  }
  cache.advance(T);

  const Tensor& head = model.lm_head();
  const float* nw = model.out_norm_w.as<float>();
  const float* nb = model.out_norm_b.as<float>();
  if (logits) {
    layernorm_rows(x.data(), nw, nb, xn.data(), T, D, c.ln_eps);
    matmul_wt(xn.data(), head.as<float>(), logits, T, c.vocab_size, D);
  } else if (last_logits) {
    layernorm_rows(x.data() + (T - 1) * D, nw, nb, xn.data(), 1, D, c.ln_eps);
    matmul_wt(xn.data(), head.as<float>(), last_logits, 1, c.vocab_size, D);
  }
}

}  // namespace mcw
