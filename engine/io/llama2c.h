// llama2.c checkpoints (.bin): Karpathy's plain f32 format. Tensors are exposed under
// GGUF's names (token_embd.weight, blk.N.attn_q.weight, ...) because both formats keep
// Meta's interleaved rotary layout for the q/k projections, unlike Hugging Face's.
#pragma once
#include <string>
#include <vector>

#include "engine/io/model_file.h"

namespace mcw {

struct Llama2cConfig {
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0,
      seq_len = 0;
  bool shared_classifier = true;
};

ModelFile read_llama2c(const std::string& path);
// Writes the legacy (version 0) layout from a ModelFile-style tensor list named as above.
void write_llama2c(const std::string& path, const Llama2cConfig& config,
                   const std::vector<Tensor>& tensors);

}  // namespace mcw
