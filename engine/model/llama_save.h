// Writes a LlamaModel in the formats other tools load: a Hugging Face directory
// (config.json + model.safetensors) or a llama2.c checkpoint.
#pragma once
#include <string>

#include "engine/core/dtype.h"
#include "engine/model/llama_model.h"

namespace mcw {

// Tokenizer files to put beside the weights: a tokenizer.json text, or a byte vocabulary.
struct TokenizerFiles {
  std::string tokenizer_json;  // written as tokenizer.json when not empty
  bool byte_vocab = false;     // writes mcw_tokenizer.json {"type": "byte"}
  bool byte_bos = true, byte_eos = true;
};

// Creates `dir` if needed; each file is written atomically.
void save_llama_hf(const LlamaModel& model, const std::string& dir, const TokenizerFiles& tok = {});
// The zero biases of layer `layer` that the HF config's attention_bias / mlp_bias make
// transformers expect but the model does not have (written beside its weights).
std::vector<Tensor> hf_zero_biases(const LlamaConfig& c, int64_t layer);
// A file's tensors as HF holds them: where the config has fused projections (Phi-3), the
// parts among `ts` become their fused matrix (rows stacked, in the parts' dtype, at the
// first part's place). hf_unfused is the reverse for tensors read from such a file: each
// fused matrix becomes views of its parts' rows, named as the parts.
std::vector<Tensor> hf_fused(const LlamaConfig& c, std::vector<Tensor> ts);
// The parts' rows stacked into one tensor `name` (a fused matrix or bias, in the parts'
// dtype); throws naming it unless every part is present, stored (not Packed), of one dtype,
// rank and row width.
Tensor stacked_rows(const std::vector<const Tensor*>& parts, const std::string& name);
std::vector<Tensor> hf_unfused(const LlamaConfig& c, std::vector<Tensor> ts);
// Only config.json and the tokenizer files of that directory (a writer that streams the
// weights as shards writes them itself).
void save_llama_hf_config(const LlamaModel& model, const std::string& dir, const TokenizerFiles& tok = {});

// The ActInt8 mask of every layer, or an empty array when no layer quantises activations
// (saved as mcw_activation_int8 / mcw.activation_int8). GGUF: engine/export/gguf_export.h.
std::vector<uint8_t> activation_int8_masks(const LlamaModel& model);

// A legacy llama2.c checkpoint (f32, q/k rows interleaved as llama2.c expects). Throws for
// what that format cannot hold: biases, a head dimension other than dim / heads.
void save_llama_llama2c(const LlamaModel& model, const std::string& path);

}  // namespace mcw
