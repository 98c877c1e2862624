// Tiny random llama models for tests.
#pragma once
#include <random>
#include <vector>

#include "engine/model/llama_model.h"

namespace mcw::test {

inline Tensor random_tensor(Shape shape, std::mt19937& rng, float scale, float offset = 0) {
  Tensor t = Tensor::zeros(DType::F32, std::move(shape));
  std::normal_distribution<float> d(0.0f, scale);
  float* p = t.mutable_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = offset + d(rng);
  return t;
}

// n token ids drawn uniformly from [0, vocab).
inline std::vector<int32_t> random_tokens(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(vocab - 1));
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = d(rng);
  return t;
}

inline LlamaModel random_llama(const LlamaConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  LlamaModel m;
  m.cfg = c;
  const float ws = 0.5f / std::sqrt(float(c.dim));
  m.tok_embd = random_tensor({c.vocab_size, c.dim}, rng, 1.0f);
  m.out_norm = random_tensor({c.dim}, rng, 0.1f, 1.0f);
  if (!c.tie_embeddings) m.output = random_tensor({c.vocab_size, c.dim}, rng, ws);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LlamaLayer L;
    L.attn_norm = random_tensor({c.dim}, rng, 0.1f, 1.0f);
    L.wq = random_tensor({c.q_dim(), c.dim}, rng, ws);
    L.wk = random_tensor({c.kv_dim(), c.dim}, rng, ws);
    L.wv = random_tensor({c.kv_dim(), c.dim}, rng, ws);
    L.wo = random_tensor({c.dim, c.q_dim()}, rng, ws);
    if (c.qkv_bias) {
      L.bq = random_tensor({c.q_dim()}, rng, 0.1f);
      L.bk = random_tensor({c.kv_dim()}, rng, 0.1f);
      L.bv = random_tensor({c.kv_dim()}, rng, 0.1f);
    }
    L.ffn_norm = random_tensor({c.dim}, rng, 0.1f, 1.0f);
    L.w_gate = random_tensor({c.hidden_dim, c.dim}, rng, ws);
    L.w_up = random_tensor({c.hidden_dim, c.dim}, rng, ws);
    L.w_down = random_tensor({c.dim, c.hidden_dim}, rng, 0.5f / std::sqrt(float(c.hidden_dim)));
    m.layers.push_back(std::move(L));
  }
  for (auto& [name, t] : m.named_tensors()) t->set_name(name);
  return m;
}

inline LlamaConfig tiny_config(int64_t heads = 4, int64_t kv_heads = 2, bool tied = false) {
  LlamaConfig c;
  c.vocab_size = 37;
  c.dim = 8 * heads;
  c.hidden_dim = 40;
  c.n_layers = 2;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = 8;
  c.max_seq_len = 64;
  c.tie_embeddings = tied;
  return c;
}

}  // namespace mcw::test
