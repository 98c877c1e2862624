#include "engine/search/block_forward.h"

#include <vector>

#include "engine/kernels/ops.h"
#include "engine/kernels/stored_matmul.h"

namespace mcw {

void llama_block(const LlamaModel& model, int64_t layer, float* x, int64_t T) {
  const LlamaConfig& c = model.cfg;
  const LlamaLayer& L = model.layers[size_t(layer)];
  std::vector<float> xn(size_t(T * c.dim)), att(size_t(T * c.q_dim())), g(size_t(T * c.hidden_dim));
  llama_norm(c, x, L.attn_norm, L.attn_norm_b, xn.data(), T);
  llama_attention_output(model, layer, xn.data(), T, att.data());
  llama_add_o_proj(model, layer, att.data(), T, x);
  llama_norm(c, x, L.ffn_norm, L.ffn_norm_b, xn.data(), T);
  llama_mlp_hidden(model, layer, xn.data(), T, g.data());
  llama_add_down_proj(model, layer, g.data(), T, x);
}

void llama_head(const LlamaModel& model, const float* x, int64_t T, float* logits) {
  const LlamaConfig& c = model.cfg;
  std::vector<float> xn(size_t(T * c.dim));
  llama_norm(c, x, model.out_norm, model.out_norm_b, xn.data(), T);
  matmul_wt_stored(xn.data(), model.lm_head(), logits, T);
}

}  // namespace mcw
