// llama2.c checkpoints (.bin): Karpathy's plain f32 format. Tensors are exposed under
// GGUF's names (token_embd.weight, blk.N.attn_q.weight, ...) because both formats keep
// Meta's interleaved rotary layout for the q/k projections, unlike Hugging Face's.
//
// Two layouts are read: the legacy one (version 0: seven int32 header fields, a negative
// vocab_size meaning a separate classifier, weights grouped by kind across layers, RoPE
// tables before the classifier) and version 1 ("ak42" magic, 256-byte header, norms
// first, no RoPE tables). Version 2 (Q8_0) is refused. Only the legacy layout is written,
// since it is the one every llama2.c port reads.
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

// Tensors are views into the memory-mapped file (no copies). When the classifier is shared
// there is no output.weight: token_embd.weight serves as both. hparams holds the header
// fields (vocab_size as a positive count), "shared_classifier" and "version" (0 or 1).
ModelFile read_llama2c(const std::string& path);

// The config a ModelFile from read_llama2c describes; throws mcw::Error naming the
// model's path when its hparams lack a field.
Llama2cConfig llama2c_config(const ModelFile& model);

// Writes the legacy (version 0) layout from a ModelFile-style tensor list named as above,
// all F32 with the exact shapes the config implies. output.weight is required when the
// classifier is not shared; when it is shared, output.weight may be present only if equal
// to token_embd.weight. Atomic (see AtomicFile); RoPE tables use theta 10000.
void write_llama2c(const std::string& path, const Llama2cConfig& config,
                   const std::vector<Tensor>& tensors);

}  // namespace mcw
