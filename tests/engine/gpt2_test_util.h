// Tiny random GPT-2 models for tests.
#pragma once
#include <cmath>
#include <random>

#include "engine/model/gpt2_model.h"
#include "llama_test_util.h"

namespace mcw::test {

inline Gpt2Config tiny_gpt2_config(bool tied = true) {
  Gpt2Config c;
  c.vocab_size = 41;
  c.dim = 16;
  c.hidden_dim = 24;  // not 4 * dim, so that [in, out] and [out, in] cannot be confused
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_positions = 24;
  c.ln_eps = 1e-5;
  c.tie_embeddings = tied;
  return c;
}

inline Gpt2Model random_gpt2(const Gpt2Config& c, uint32_t seed) {
  std::mt19937 rng(seed);
  Gpt2Model m;
  m.cfg = c;
  const int64_t D = c.dim, F = c.hidden_dim;
  const float ws = 0.5f / std::sqrt(float(D));
  m.tok_embd = random_tensor({c.vocab_size, D}, rng, 1.0f);
  m.pos_embd = random_tensor({c.n_positions, D}, rng, 0.3f);
  m.out_norm_w = random_tensor({D}, rng, 0.1f, 1.0f);
  m.out_norm_b = random_tensor({D}, rng, 0.1f);
  if (!c.tie_embeddings) m.output = random_tensor({c.vocab_size, D}, rng, ws);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    Gpt2Layer L;
    L.ln1_w = random_tensor({D}, rng, 0.1f, 1.0f);
    L.ln1_b = random_tensor({D}, rng, 0.1f);
    L.w_qkv = random_tensor({3 * D, D}, rng, ws);
    L.b_qkv = random_tensor({3 * D}, rng, 0.1f);
    L.w_o = random_tensor({D, D}, rng, ws);
    L.b_o = random_tensor({D}, rng, 0.1f);
    L.ln2_w = random_tensor({D}, rng, 0.1f, 1.0f);
    L.ln2_b = random_tensor({D}, rng, 0.1f);
    L.w_up = random_tensor({F, D}, rng, ws);
    L.b_up = random_tensor({F}, rng, 0.1f);
    L.w_down = random_tensor({D, F}, rng, 0.5f / std::sqrt(float(F)));
    L.b_down = random_tensor({D}, rng, 0.1f);
    m.layers.push_back(std::move(L));
  }
  for (auto& [name, t] : m.named_tensors()) t->set_name(name);
  return m;
}

}  // namespace mcw::test
