// The GPT-2 family decoder (GPT-2, DistilGPT-2, nanoGPT exports): learned absolute
// position embeddings, pre-LayerNorm blocks with biases, one fused q/k/v projection, a
// GELU MLP and an LM head tied to the token embeddings. Hugging Face stores the linear
// weights as Conv1D, [in, out]; the loader transposes them once, so every weight here is
// [out, in] like nn.Linear (the layout matmul_wt and the compression code expect).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/model_file.h"

namespace mcw {

enum class Gpt2Activation { GeluTanh, GeluErf };

struct Gpt2Config {
  int64_t vocab_size = 0, dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0;
  int64_t n_positions = 0;  // rows of the position embedding: the longest context
  double ln_eps = 1e-5;
  Gpt2Activation activation = Gpt2Activation::GeluTanh;
  bool tie_embeddings = true;
  bool scale_attn_weights = true;  // scores divided by sqrt(head_dim)

  int64_t head_dim() const { return n_heads > 0 ? dim / n_heads : 0; }
  // Throws mcw::Error(file, ...) naming the inconsistent key, as HF config.json or (with
  // gguf_keys) as GGUF calls it.
  void validate(const std::string& file, bool gguf_keys = false) const;
  nlohmann::ordered_json to_hf_config() const;  // a config.json that transformers loads
};

// From HF config.json (model_type gpt2) or GGUF gpt2.* keys. The vocabulary size of a
// GGUF file comes from its token embedding when gpt2.vocab_size is absent.
Gpt2Config gpt2_config_from(const ModelFile& m);

struct Gpt2Layer {
  Tensor ln1_w, ln1_b;    // [D]
  Tensor w_qkv, b_qkv;    // [3D, D], [3D]: rows q, then k, then v
  Tensor w_o, b_o;        // [D, D], [D]
  Tensor ln2_w, ln2_b;    // [D]
  Tensor w_up, b_up;      // [F, D], [F]
  Tensor w_down, b_down;  // [D, F], [D]
};

struct Gpt2Model {
  Gpt2Config cfg;
  Tensor tok_embd, pos_embd;  // [V, D], [P, D]
  Tensor out_norm_w, out_norm_b;
  Tensor output;  // [V, D]; empty when tied to tok_embd
  std::vector<Gpt2Layer> layers;

  const Tensor& lm_head() const { return output.empty() ? tok_embd : output; }
  // Every weight under its HF name (without the "transformer." prefix), in a stable order.
  // The linear weights are [out, in], transposed from what HF files store under that name.
  std::vector<std::pair<std::string, Tensor*>> named_tensors();
  std::vector<std::pair<std::string, const Tensor*>> named_tensors() const;
  uint64_t parameter_count() const;
};

// Throws mcw::Error naming the file and the offending tensor/key when the tensors do not
// match the config (missing layer, wrong shape, unsupported dtype).
Gpt2Model load_gpt2(const ModelFile& m);
Gpt2Model load_gpt2(const std::string& path);

// Keys and values of every layer for the positions seen so far.
class Gpt2Cache {
 public:
  Gpt2Cache(const Gpt2Config& cfg, int64_t capacity);
  int64_t size() const { return len_; }
  int64_t capacity() const { return cap_; }
  void clear() { len_ = 0; }
  float* k(int64_t layer, int64_t pos) { return &k_[size_t((layer * cap_ + pos) * dim_)]; }
  float* v(int64_t layer, int64_t pos) { return &v_[size_t((layer * cap_ + pos) * dim_)]; }
  void advance(int64_t n) { len_ += n; }

 private:
  int64_t cap_, dim_, len_ = 0;
  std::vector<float> k_, v_;
};

// Runs `tokens` at positions cache.size()... and appends them to the cache. Writes the
// logits of every position to `logits` ([tokens.size(), vocab]) when it is not null, or
// only of the last position to `last_logits` ([vocab]) when that is not null. Throws
// mcw::Error past n_positions (the model has no embedding for later positions).
void gpt2_forward(const Gpt2Model& model, std::span<const int32_t> tokens, Gpt2Cache& cache,
                  float* logits, float* last_logits = nullptr);

}  // namespace mcw
