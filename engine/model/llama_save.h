// Writes a LlamaModel in the formats other tools load: a Hugging Face directory
// (config.json + model.safetensors) or a GGUF file with llama.cpp's "llama" metadata.
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
// Only config.json and the tokenizer files of that directory (a writer that streams the
// weights as shards writes them itself).
void save_llama_hf_config(const LlamaModel& model, const std::string& dir, const TokenizerFiles& tok = {});

// Weights in `dtype` (F32, F16, BF16, Q8_0, Q4_0, Q4_1; norms always F32), q/k rows in
// the interleaved rotary order llama.cpp expects. No tokenizer metadata.
void save_llama_gguf(const LlamaModel& model, const std::string& path, DType dtype = DType::F32);

// A legacy llama2.c checkpoint (f32, q/k rows interleaved as llama2.c expects). Throws for
// what that format cannot hold: biases, a head dimension other than dim / heads.
void save_llama_llama2c(const LlamaModel& model, const std::string& path);

}  // namespace mcw
