// The llama-family decoder: weights under Hugging Face names and layout, and the forward
// pass with a KV cache. A loaded model's matrices are views of the mapped file in its
// dtype (f32, f16, bf16, Q8_0, Q4_0, Q4_1; matmul_wt_stored reads them as they are),
// its norms and biases owned f32; models built in memory (training, compression) are f32. GGUF and llama2.c keep Meta's
// interleaved rotary layout for q/k; the loader permutes those rows into HF's halves
// layout so that one forward pass serves every source.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/io/model_file.h"
#include "engine/model/llama_config.h"

namespace mcw {

// Bits of LlamaLayer::act_int8: which linear inputs are fake-quantised per token to int8
// (W8A8). Linears sharing an input share its bit.
enum ActInt8 : uint8_t {
  kActInt8Qkv = 1,     // input of q/k/v
  kActInt8O = 2,       // input of o_proj
  kActInt8GateUp = 4,  // input of gate/up
  kActInt8Down = 8,    // input of down_proj
  kActInt8All = 15,
};

struct LlamaLayer {
  Tensor attn_norm, wq, wk, wv, wo, bq, bk, bv;  // biases empty unless cfg.qkv_bias
  Tensor ffn_norm, w_gate, w_up, w_down;
  Tensor bo, b_down;     // empty unless cfg.o_bias / cfg.down_bias
  Tensor attn_norm_b, ffn_norm_b;  // LayerNorm's biases (cfg.layer_norm())
  Tensor b_up;                     // empty unless cfg.up_bias; w_gate empty unless gated
  uint8_t act_int8 = 0;  // ActInt8 bits
};

struct LlamaModel {
  LlamaConfig cfg;
  Tensor tok_embd, out_norm, output;  // output empty when tied to tok_embd
  Tensor pos_embd, out_norm_b;         // learned positions [max_seq_len, D]; LayerNorm bias
  std::vector<LlamaLayer> layers;

  const Tensor& lm_head() const { return cfg.tie_embeddings ? tok_embd : output; }
  // Every weight under its HF name, in a stable order (for export, compression, UI).
  std::vector<std::pair<std::string, Tensor*>> named_tensors();
  std::vector<std::pair<std::string, const Tensor*>> named_tensors() const;
  std::vector<std::string> tensor_names() const;  // the names of named_tensors()
  uint64_t parameter_count() const;
};

// Throws mcw::Error naming the file and the offending tensor/key when the tensors do not
// match the config (missing layer, wrong shape, unsupported dtype).
LlamaModel load_llama(const ModelFile& m);
LlamaModel load_llama(const std::string& path);
// The per-layer ActInt8 masks a W8A8 model's file holds (config.json "mcw_activation_int8"
// or GGUF "mcw.activation_int8"), set on `model`'s layers; throws naming the key when bad.
void read_activation_int8(const ModelFile& m, LlamaModel& model);

// Rows of a q/k projection in Meta's interleaved rotary order -> HF's rotate-half order
// (and back, inverse = true), per head of size head_dim.
Tensor permute_rotary_rows(const Tensor& w, int64_t n_heads, int64_t head_dim, bool inverse = false);

// Keys and values of every layer for the positions seen so far.
class KVCache {
 public:
  KVCache(const LlamaConfig& cfg, int64_t capacity);
  // Only layer `only_layer` (calibration runs one block at a time).
  KVCache(const LlamaConfig& cfg, int64_t capacity, int64_t only_layer);
  int64_t size() const { return len_; }
  int64_t capacity() const { return cap_; }
  void clear() { len_ = 0; }
  float* k(int64_t layer, int64_t pos) { return &k_[size_t(((layer - first_) * cap_ + pos) * kv_dim_)]; }
  float* v(int64_t layer, int64_t pos) { return &v_[size_t(((layer - first_) * cap_ + pos) * kv_dim_)]; }
  void advance(int64_t n) { len_ += n; }
  // Floats between one position's keys and the next: the widest block's kv_dim (a block
  // with fewer key/value heads uses the first of them).
  int64_t row_stride() const { return kv_dim_; }

 private:
  int64_t cap_, kv_dim_, len_ = 0, first_ = 0;
  std::vector<float> k_, v_;
};

// The pieces of one decoder block, for code that walks the model block by block
// (calibration): token embeddings [T, D] (with the learned positions from
// `first_position` on, where the model has them); the attention output of `layer` before
// o_proj for a normed input xn [T, D] of a fresh window (positions 0..T-1) -> [T, q_dim];
// and the MLP's hidden activations, silu(xn·Wgᵀ) ⊙ (xn·Wuᵀ) or gelu(xn·Wuᵀ + b) ->
// [T, hidden_dim].
void llama_embed(const LlamaModel& model, std::span<const int32_t> tokens, float* x,
                 int64_t first_position = 0);
// out [T, D] = the block's norm of x [T, D] with weight w (and bias b for LayerNorm).
void llama_norm(const LlamaConfig& c, const float* x, const Tensor& w, const Tensor& b, float* out,
                int64_t T);
void llama_attention_output(const LlamaModel& model, int64_t layer, const float* xn, int64_t T,
                            float* att);
void llama_mlp_hidden(const LlamaModel& model, int64_t layer, const float* xn, int64_t T, float* g);
// x [T, D] += o_proj(att) and x += down_proj(g), with the layer's output bias and int8
// activations when it has them; the inputs are left as they are.
void llama_add_o_proj(const LlamaModel& model, int64_t layer, const float* att, int64_t T, float* x);
void llama_add_down_proj(const LlamaModel& model, int64_t layer, const float* g, int64_t T, float* x);

// The linear products of the forward pass, for a caller that runs them on other kernels
// (packed compressed weights): y [T, out] (+)= x [T, in] · Wᵀ (+ bias) for the weight
// `which` of `layer` (layer is −1 for the head). Without a hook, the f32 GEMM on the
// model's weights.
enum class LlamaLinear { Q, K, V, O, Gate, Up, Down, Head };
using LlamaLinearFn = std::function<void(int64_t layer, LlamaLinear which, const float* x,
                                         int64_t T, float* y, const float* bias, bool accumulate)>;

// Runs `tokens` at positions cache.size()... and appends them to the cache. Writes the
// logits of every position to `logits` ([tokens.size(), vocab]) when it is not null, or
// only of the last position to `last_logits` ([vocab]) when that is not null.
void llama_forward(const LlamaModel& model, std::span<const int32_t> tokens, KVCache& cache,
                   float* logits, float* last_logits = nullptr,
                   const LlamaLinearFn* linear = nullptr);

}  // namespace mcw
