// Hyper-parameters of the llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM,
// TinyLlama), read from whichever file a model came in.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/io/model_file.h"

namespace mcw {

struct RopeScaling {  // Llama 3.x "llama3" frequency scaling
  bool enabled = false;
  double factor = 8, low_freq_factor = 1, high_freq_factor = 4;
  double original_max_position = 8192;
};

// Phi-3's LongRoPE ("longrope", formerly "su"; transformers' _compute_longrope_parameters):
// each frequency divided by its factor, cos and sin scaled by attention_factor; the short
// factors for a forward call whose positions stay within original_max_position, the long
// ones past it (rope_inv_freq).
struct LongRope {
  std::vector<double> short_factor, long_factor;  // head_dim / 2 each
  double attention_factor = 1;
  int64_t original_max_position = 0;
  bool enabled() const { return !short_factor.empty(); }
};

// How a block normalises its inputs: RMSNorm (llama) or LayerNorm with a bias (GPT-2).
enum class NormKind { Rms, Layer };
// The MLP: SwiGLU, silu(x·Wgᵀ) ⊙ (x·Wuᵀ) (llama), or GPT-2's ungated GELU of x·Wuᵀ + b,
// with the tanh approximation (gelu_new) or the exact erf form.
enum class MlpKind { SwiGlu, GeluTanh, GeluErf };

// One block's attention and MLP widths, where blocks differ (FLAP's global allocation
// prunes each block by its own amount).
struct BlockShape {
  int64_t n_heads = 0, n_kv_heads = 0, hidden_dim = 0;
  friend bool operator==(const BlockShape&, const BlockShape&) = default;
};

struct LlamaConfig {
  // The family it came from ("llama", "mistral", "qwen2", "phi3", "gpt2"), so that a saved
  // config says the same where it can (to_hf_config).
  std::string model_type = "llama";
  int64_t vocab_size = 0, dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0;
  int64_t head_dim = 0;  // usually dim / n_heads
  int64_t max_seq_len = 2048;
  double rope_theta = 10000, rms_eps = 1e-5;
  bool tie_embeddings = false;
  bool qkv_bias = false;  // Qwen2 has biases on q/k/v
  // Output biases of o_proj / down_proj. Llama has none; structured pruning adds them to
  // carry the removed heads' and channels' mean contribution (FLAP bias compensation).
  bool o_bias = false, down_bias = false;
  RopeScaling rope_scaling;
  LongRope long_rope;
  // Mistral's sliding-window attention: a query sees the last `sliding_window` positions,
  // itself included (HF masks keys with q − k >= sliding_window); 0: every earlier one.
  int64_t sliding_window = 0;
  // GPT-2's block: LayerNorm (rms_eps is its epsilon), learned absolute positions added to
  // the token embeddings instead of rotary ones (max_seq_len rows, and no position past
  // them), an ungated GELU MLP with an up_proj bias, and (scale_attention false) scores
  // not divided by sqrt(head_dim) where its config says so.
  NormKind norm = NormKind::Rms;
  MlpKind mlp = MlpKind::SwiGlu;
  bool learned_positions = false, up_bias = false, scale_attention = true;
  // Each block's widths, in order, when they are not all n_heads / n_kv_heads / hidden_dim;
  // those then hold the largest of each (buffers sized by them hold any block). Empty for
  // the uniform models every family's files describe; set through set_block_shapes.
  std::vector<BlockShape> block_shapes;

  bool gated_mlp() const { return mlp == MlpKind::SwiGlu; }
  bool layer_norm() const { return norm == NormKind::Layer; }
  // llama's own block (RMSNorm, rotary positions, SwiGLU), the one the backward passes and
  // the structured stages are written for; not GPT-2's variant.
  bool llama_block() const { return gated_mlp() && !layer_norm() && !learned_positions; }

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  bool uniform() const { return block_shapes.empty(); }
  BlockShape block(int64_t layer) const {
    return uniform() ? BlockShape{n_heads, n_kv_heads, hidden_dim} : block_shapes[size_t(layer)];
  }
  int64_t q_dim(int64_t layer) const { return block(layer).n_heads * head_dim; }
  int64_t kv_dim(int64_t layer) const { return block(layer).n_kv_heads * head_dim; }
  int64_t hidden_dim_of(int64_t layer) const { return block(layer).hidden_dim; }
  // Per-block widths (n_layers of them): the uniform fields become their maxima, and the
  // list is dropped again when every block has the same.
  void set_block_shapes(std::vector<BlockShape> shapes);
  // Throws mcw::Error(file, ...) naming the inconsistent field.
  void validate(const std::string& file) const;
  nlohmann::ordered_json to_hf_config() const;  // a config.json that transformers loads
  // The model_type to_hf_config writes: the family it came from where that family's
  // config holds this model (a Qwen2 has q/k/v biases and no others; a Phi-3 has no biases
  // and heads of hidden_size / num_attention_heads; structured pruning's compensation
  // biases make either a Llama with attention_bias), else "mistral" for a sliding window
  // (transformers' Llama has none), else "llama".
  std::string hf_model_type() const;
  // Whether the HF files hold q/k/v and gate/up fused (Phi-3's qkv_proj, gate_up_proj).
  bool fused_projections() const { return hf_model_type() == "phi3"; }
  // Whether HF files hold the tensors otherwise than MCW's model does (fused, renamed or
  // transposed: Phi-3, GPT-2), so that writers go through hf_fused and readers hf_unfused.
  bool own_file_layout() const { return fused_projections() || model_type == "gpt2"; }
};

// From HF config.json (model_type llama/mistral/qwen2), GGUF `<arch>.*` keys, or the
// llama2.c header; vocab size and tied embeddings are checked against the tensors later.
LlamaConfig llama_config_from(const ModelFile& m);

}  // namespace mcw
