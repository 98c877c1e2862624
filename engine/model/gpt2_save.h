// Writes a Gpt2Model as the files other tools load: a Hugging Face directory (Conv1D
// [in, out] weights, config.json) or a GGUF file with llama.cpp's "gpt2" names and keys.
#pragma once
#include <string>

#include "engine/core/dtype.h"
#include "engine/model/gpt2_model.h"

namespace mcw {

struct Gpt2HfOptions {
  bool transformer_prefix = true;  // "transformer.h.0..." (GPT2LMHeadModel) or "h.0..."
  std::string tokenizer_json;      // written as tokenizer.json when not empty
};

// Creates `dir` if needed; each file is written atomically. A tied head writes no
// lm_head.weight (transformers ties it on load).
void save_gpt2_hf(const Gpt2Model& model, const std::string& dir, const Gpt2HfOptions& opt = {});

// Linear and embedding weights in `dtype` (F32, F16, BF16, Q8_0, Q4_0, Q4_1; rows whose
// length is not a whole number of blocks stay F32); norms and biases F32. No tokenizer.
void save_gpt2_gguf(const Gpt2Model& model, const std::string& path, DType dtype = DType::F32);

}  // namespace mcw
