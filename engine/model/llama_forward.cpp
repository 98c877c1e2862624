// The decoder's forward pass: batched over the tokens of one call (prefill), or one token
// at a time (decode), with keys/values kept in a KVCache.
#include <tbb/parallel_for.h>

#include <cmath>
#include <string>

#include "engine/core/error.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/ops.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/llama_model.h"

namespace mcw {

KVCache::KVCache(const LlamaConfig& cfg, int64_t capacity)
    : cap_(capacity),
      kv_dim_(cfg.kv_dim()),
      k_(size_t(cfg.n_layers * capacity * cfg.kv_dim())),
      v_(size_t(cfg.n_layers * capacity * cfg.kv_dim())) {}

KVCache::KVCache(const LlamaConfig& cfg, int64_t capacity, int64_t only_layer)
    : cap_(capacity),
      kv_dim_(cfg.kv_dim()),
      first_(only_layer),
      k_(size_t(capacity * cfg.kv_dim())),
      v_(size_t(capacity * cfg.kv_dim())) {}

// Causal attention of T new queries (positions p0..p0+T-1) against cache rows 0..p0+t
// (only the last sliding_window of them when the model has a window).
// Causal attention of T new tokens at positions p0.. against the cache. Few tokens (decode):
// one task per (token, head), dot products row by row. A prefill: per head and tile of
// query rows, the scores S = Q·Kᵀ and the output P·V as f32 GEMMs over the keys the tile
// can see (the per-pair loop ran at a fraction of GEMM speed: 37 % of a 1B calibration
// forward at 2048 tokens), masked and softmaxed row by row in between.
static void attention(const LlamaConfig& c, const float* q, KVCache& cache, int64_t layer,
                      int64_t p0, int64_t T, float* out) {
  const BlockShape b = c.block(layer);
  const int64_t hd = c.head_dim, heads = b.n_heads, group = b.n_heads / b.n_kv_heads;
  const int64_t Q = heads * hd, kv_stride = cache.row_stride();
  // LongRoPE scales cos and sin, so q·k, by its attention factor squared.
  const double af = c.long_rope.attention_factor;
  const float scale = float(af * af / (c.scale_attention ? std::sqrt(double(hd)) : 1.0));
  const auto first_key = [&](int64_t t) {  // the first position row t attends to
    return c.sliding_window > 0 ? std::max<int64_t>(0, p0 + t + 1 - c.sliding_window) : 0;
  };
  constexpr int64_t kGemmMinTokens = 16, kTile = 128;
  if (T < kGemmMinTokens) {
    tbb::parallel_for(int64_t(0), T * heads, [&](int64_t job) {
      const int64_t t = job / heads, h = job % heads, kvh = h / group;
      const int64_t first = first_key(t), n_keys = p0 + t + 1 - first;
      const float* qh = q + t * Q + h * hd;
      std::vector<float> score(static_cast<size_t>(n_keys));
      for (int64_t s = 0; s < n_keys; ++s) {
        const float* kh = cache.k(layer, first + s) + kvh * hd;
        float acc = 0;
        for (int64_t i = 0; i < hd; ++i) acc += qh[i] * kh[i];
        score[size_t(s)] = acc * scale;
      }
      softmax_row(score.data(), n_keys);
      float* oh = out + t * Q + h * hd;
      std::fill(oh, oh + hd, 0.0f);
      for (int64_t s = 0; s < n_keys; ++s) {
        const float* vh = cache.v(layer, first + s) + kvh * hd;
        const float p = score[size_t(s)];
        for (int64_t i = 0; i < hd; ++i) oh[i] += p * vh[i];
      }
    });
    return;
  }
  const int64_t tiles = (T + kTile - 1) / kTile;
  tbb::parallel_for(int64_t(0), heads * tiles, [&](int64_t job) {
    const int64_t h = job / tiles, t0 = job % tiles * kTile, t1 = std::min(T, t0 + kTile);
    const int64_t kvh = h / group, rows = t1 - t0;
    const int64_t k0 = first_key(t0), k1 = p0 + t1;  // keys any row of the tile sees
    const int64_t n = k1 - k0;
    std::vector<float> s(static_cast<size_t>(rows * n));
    matmul_wt_strided(q + t0 * Q + h * hd, Q, cache.k(layer, k0) + kvh * hd, kv_stride, s.data(), n,
                      rows, n, hd);
    for (int64_t r = 0; r < rows; ++r) {
      float* row = s.data() + r * n;
      const int64_t lo = first_key(t0 + r) - k0, hi = p0 + t0 + r + 1 - k0;  // [lo, hi)
      for (int64_t j = lo; j < hi; ++j) row[j] *= scale;
      softmax_row(row + lo, hi - lo);
      std::fill(row, row + lo, 0.0f);
      std::fill(row + hi, row + n, 0.0f);
    }
    matmul_strided(s.data(), n, cache.v(layer, k0) + kvh * hd, kv_stride, out + t0 * Q + h * hd, Q,
                   rows, hd, n);
  });
}

static const float* bias_of(const Tensor& b) { return b.empty() ? nullptr : b.as<float>(); }

// y [T, W.rows] (+)= x · Wᵀ (+ bias), through the caller's hook when there is one.
static void linear(const LlamaLinearFn* hook, int64_t layer, LlamaLinear which, const Tensor& W,
                   const float* x, int64_t T, float* y, const float* bias = nullptr,
                   bool accumulate = false) {
  if (hook) return (*hook)(layer, which, x, T, y, bias, accumulate);
  matmul_wt_stored(x, W, y, T, bias, accumulate);
}

// The input a linear group sees: `x` itself, or its per-token int8 fake quantisation (in
// `scratch`) when the layer quantises that input.
static const float* linear_input(const LlamaLayer& L, ActInt8 bit, const float* x, int64_t rows,
                                 int64_t cols, std::vector<float>& scratch) {
  if (!(L.act_int8 & bit)) return x;
  scratch.assign(x, x + rows * cols);
  fake_quantize_rows_int8(scratch.data(), rows, cols);
  return scratch.data();
}

// q/k/v projections, rotary embedding, cache append and causal attention of layer l for T
// tokens at positions p0..; `xn` is the normed input [T, D], `att` receives [T, q_dim].
static void attention_block(const LlamaModel& model, int64_t l, const float* xn, int64_t T,
                            KVCache& cache, int64_t p0, const std::vector<float>& inv_freq,
                            float* att, const LlamaLinearFn* hook) {
  const LlamaConfig& c = model.cfg;
  const LlamaLayer& L = model.layers[size_t(l)];
  const BlockShape b = c.block(l);
  const int64_t D = c.dim, Q = c.q_dim(l), KV = c.kv_dim(l);
  std::vector<float> q(size_t(T * Q)), k(size_t(T * KV)), v(size_t(T * KV)), xq;
  xn = linear_input(L, kActInt8Qkv, xn, T, D, xq);
  linear(hook, l, LlamaLinear::Q, L.wq, xn, T, q.data(), bias_of(L.bq));
  linear(hook, l, LlamaLinear::K, L.wk, xn, T, k.data(), bias_of(L.bk));
  linear(hook, l, LlamaLinear::V, L.wv, xn, T, v.data(), bias_of(L.bv));
  for (int64_t t = 0; t < T; ++t) {
    if (!c.learned_positions) {
      rope_row(q.data() + t * Q, b.n_heads, c.head_dim, p0 + t, inv_freq.data());
      rope_row(k.data() + t * KV, b.n_kv_heads, c.head_dim, p0 + t, inv_freq.data());
    }
    std::copy(k.data() + t * KV, k.data() + (t + 1) * KV, cache.k(l, p0 + t));
    std::copy(v.data() + t * KV, v.data() + (t + 1) * KV, cache.v(l, p0 + t));
  }
  attention(c, q.data(), cache, l, p0, T, att);
}

void llama_attention_output(const LlamaModel& model, int64_t layer, const float* xn, int64_t T,
                            float* att) {
  KVCache cache(model.cfg, T, layer);
  attention_block(model, layer, xn, T, cache, 0, rope_inv_freq(model.cfg, T), att, nullptr);
}

static void mlp_hidden(const LlamaModel& model, int64_t layer, const float* xn, int64_t T,
                       float* g, const LlamaLinearFn* hook) {
  const LlamaConfig& c = model.cfg;
  const LlamaLayer& L = model.layers[size_t(layer)];
  const int64_t H = c.hidden_dim_of(layer);
  std::vector<float> xq;
  xn = linear_input(L, kActInt8GateUp, xn, T, c.dim, xq);
  if (!c.gated_mlp()) {  // GPT-2: gelu(x·Wuᵀ + b)
    linear(hook, layer, LlamaLinear::Up, L.w_up, xn, T, g, bias_of(L.b_up));
    (c.mlp == MlpKind::GeluTanh ? gelu_tanh : gelu_erf)(g, T * H);
    return;
  }
  std::vector<float> u(size_t(T * H));
  linear(hook, layer, LlamaLinear::Gate, L.w_gate, xn, T, g);
  linear(hook, layer, LlamaLinear::Up, L.w_up, xn, T, u.data());
  silu_mul(g, u.data(), T * H);
}

static void add_o_proj(const LlamaModel& model, int64_t layer, const float* att, int64_t T,
                       float* x, const LlamaLinearFn* hook) {
  const LlamaConfig& c = model.cfg;
  const LlamaLayer& L = model.layers[size_t(layer)];
  std::vector<float> aq;
  att = linear_input(L, kActInt8O, att, T, c.q_dim(layer), aq);
  linear(hook, layer, LlamaLinear::O, L.wo, att, T, x, bias_of(L.bo), /*accumulate=*/true);
}

static void add_down_proj(const LlamaModel& model, int64_t layer, const float* g, int64_t T,
                          float* x, const LlamaLinearFn* hook) {
  const LlamaConfig& c = model.cfg;
  const LlamaLayer& L = model.layers[size_t(layer)];
  std::vector<float> gq;
  g = linear_input(L, kActInt8Down, g, T, c.hidden_dim_of(layer), gq);
  linear(hook, layer, LlamaLinear::Down, L.w_down, g, T, x, bias_of(L.b_down), true);
}

void llama_mlp_hidden(const LlamaModel& model, int64_t layer, const float* xn, int64_t T, float* g) {
  mlp_hidden(model, layer, xn, T, g, nullptr);
}
void llama_add_o_proj(const LlamaModel& model, int64_t layer, const float* att, int64_t T, float* x) {
  add_o_proj(model, layer, att, T, x, nullptr);
}
void llama_add_down_proj(const LlamaModel& model, int64_t layer, const float* g, int64_t T, float* x) {
  add_down_proj(model, layer, g, T, x, nullptr);
}

void llama_embed(const LlamaModel& model, std::span<const int32_t> tokens, float* x,
                 int64_t first_position) {
  const LlamaConfig& c = model.cfg;
  const int64_t T = int64_t(tokens.size()), D = c.dim;
  if (c.learned_positions && first_position + T > c.max_seq_len)
    throw Error("", "context of " + std::to_string(first_position + T) +
                        " tokens exceeds the model's " + std::to_string(c.max_seq_len) +
                        " positions (n_positions)");
  std::vector<float> pos(c.learned_positions ? size_t(D) : 0);
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = tokens[size_t(t)];
    if (id < 0 || id >= c.vocab_size)
      throw Error("", "token id " + std::to_string(id) + " is outside the vocabulary (" +
                          std::to_string(c.vocab_size) + ")");
    float* row = x + t * D;
    weight_rows_f32(model.tok_embd, id, int64_t(id) + 1, row);
    if (!c.learned_positions) continue;
    weight_rows_f32(model.pos_embd, first_position + t, first_position + t + 1, pos.data());
    for (int64_t i = 0; i < D; ++i) row[i] += pos[size_t(i)];
  }
}

void llama_norm(const LlamaConfig& c, const float* x, const Tensor& w, const Tensor& b, float* out,
                int64_t T) {
  if (c.layer_norm())
    layernorm_rows(x, w.as<float>(), b.as<float>(), out, T, c.dim, c.rms_eps);
  else
    rmsnorm_rows(x, w.as<float>(), out, T, c.dim, c.rms_eps);
}

void llama_forward(const LlamaModel& model, std::span<const int32_t> tokens, KVCache& cache,
                   float* logits, float* last_logits, const LlamaLinearFn* hook) {
  const LlamaConfig& c = model.cfg;
  const int64_t T = int64_t(tokens.size()), D = c.dim, H = c.hidden_dim;
  const int64_t Q = c.q_dim(), p0 = cache.size();
  if (T == 0) return;
  if (p0 + T > cache.capacity())
    throw Error("", "context of " + std::to_string(p0 + T) + " tokens exceeds the KV cache (" +
                        std::to_string(cache.capacity()) + ")");

  std::vector<float> x(size_t(T * D)), xn(size_t(T * D)), att(size_t(T * Q)), g(size_t(T * H));
  llama_embed(model, tokens, x.data(), p0);
  // LongRoPE's factors follow the positions this call reaches; keys cached by earlier calls
  // keep the rotation they got then (transformers does the same).
  const std::vector<float> inv_freq = rope_inv_freq(c, p0 + T);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& L = model.layers[size_t(l)];
    llama_norm(c, x.data(), L.attn_norm, L.attn_norm_b, xn.data(), T);
    attention_block(model, l, xn.data(), T, cache, p0, inv_freq, att.data(), hook);
    add_o_proj(model, l, att.data(), T, x.data(), hook);
    llama_norm(c, x.data(), L.ffn_norm, L.ffn_norm_b, xn.data(), T);
    mlp_hidden(model, l, xn.data(), T, g.data(), hook);
    add_down_proj(model, l, g.data(), T, x.data(), hook);
  }
  cache.advance(T);

  const Tensor& head = model.lm_head();
  if (logits) {
    llama_norm(c, x.data(), model.out_norm, model.out_norm_b, xn.data(), T);
    linear(hook, -1, LlamaLinear::Head, head, xn.data(), T, logits);
  } else if (last_logits) {
    llama_norm(c, x.data() + (T - 1) * D, model.out_norm, model.out_norm_b, xn.data(), 1);
    linear(hook, -1, LlamaLinear::Head, head, xn.data(), 1, last_logits);
  }
}

}  // namespace mcw
