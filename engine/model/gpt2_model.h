// The GPT-2 family (GPT-2, DistilGPT-2, nanoGPT exports): learned absolute position
// embeddings, pre-LayerNorm blocks with biases, one fused q/k/v projection, a GELU MLP and
// an LM head tied to the token embeddings. MCW runs, calibrates and compresses it as a
// variant of the llama decoder (LlamaConfig's norm, mlp and learned_positions): its files'
// tensor table below maps each tensor onto LlamaModel's (c_attn onto q/k/v rows). Hugging
// Face stores the linear weights as Conv1D, [in, out]; the loader transposes them once.
// Gpt2Model is GPT-2 in its own files' terms, what MCW writes such files from.
#pragma once
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/io/model_file.h"
#include "engine/model/llama_model.h"
#include "engine/model/llama_tensors.h"

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

  // Its tensors in the order of gpt2_block_file_tensors().
  std::array<Tensor*, 12> in_file_order() {
    return {&ln1_w, &ln1_b, &w_qkv, &b_qkv, &w_o,    &b_o,
            &ln2_w, &ln2_b, &w_up,  &b_up,  &w_down, &b_down};
  }
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

// Whether a file holds a GPT-2 (HF model_type / architectures, GGUF general.architecture).
bool is_gpt2(const ModelFile& m);

// GPT-2's hyper-parameters as the llama decoder's variant, and back.
LlamaConfig llama_config_of(const Gpt2Config& g);
Gpt2Config gpt2_config_of(const LlamaConfig& c);

// A tensor of GPT-2's blocks as its files name it, and the tensors of MCW's model it holds
// (in row order: c_attn holds q, k, v).
struct Gpt2FileTensor {
  const char* hf;    // after "h.N.": "attn.c_attn.weight"
  const char* gguf;  // after "blk.N.": "attn_qkv.weight"
  std::vector<BlockRole> parts;
  bool conv1d;  // HF stores it [in, out]
};
const std::vector<Gpt2FileTensor>& gpt2_block_file_tensors();
// The rows of file tensor `f` under `c` (its parts' summed), and its parts as views of `t`
// (of a Conv1D weight [in, out] through conv1d_rows when `conv1d`), named as MCW names
// them in block `layer`.
int64_t gpt2_file_tensor_rows(const LlamaConfig& c, const Gpt2FileTensor& f);
std::vector<Tensor> gpt2_file_tensor_parts(const LlamaConfig& c, const Gpt2FileTensor& f,
                                           const Tensor& t, bool conv1d, int64_t layer);
// A 2-D f32/f16/bf16 tensor transposed, in its dtype (HF's Conv1D weights are [in, out]);
// throws naming `file` for any other.
Tensor conv1d_transposed(const Tensor& t, const std::string& file);
// Rows [first, first + rows) of the [out, in] matrix a Conv1D weight `stored` [in, out]
// holds, as a view of it that transposes as it is read (no copy of the weight).
Tensor conv1d_rows(const Tensor& stored, int64_t first, int64_t rows, std::string name);
// MCW's tensors of a GPT-2 (named as LlamaModel names them) as GPT2LMHeadModel's HF file
// holds them: renamed, q/k/v stacked into c_attn, Conv1D weights transposed (copies);
// gpt2_model_tensors is the reverse (views of each file tensor's parts, conv1d_rows).
std::vector<Tensor> gpt2_file_tensors(std::vector<Tensor> ts);
std::vector<Tensor> gpt2_model_tensors(const LlamaConfig& c, std::vector<Tensor> ts);

// Loads a GPT-2 file as the llama decoder's variant. Matrices stay views of the mapped file
// in its dtype (HF's Conv1D weights through conv1d_rows); norms and biases are owned f32. Throws
// mcw::Error naming the file and the offending tensor/key, in the file's own naming, when the
// tensors do not match the config.
LlamaModel load_gpt2(const ModelFile& m);
LlamaModel load_gpt2(const std::string& path);
// The same model from a Gpt2Model in memory (its tensors shared, c_attn split into rows).
LlamaModel llama_from_gpt2(const Gpt2Model& m);

}  // namespace mcw
