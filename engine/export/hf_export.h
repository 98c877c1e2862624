// `mcw export MODEL --format hf`: any model MCW opens as a Llama-family model — a GGUF of
// any block type it reads, a GPTQ / AWQ / compressed-tensors checkpoint, an MCW compressed
// directory, a llama2.c file — written as a Hugging Face sharded checkpoint (one shard per
// decoder block plus one for the rest, model.safetensors.index.json, config.json with the
// model's own architecture, the tokenizer: the source's files, or the tokenizer.json a
// GGUF's byte-level BPE vocabulary stands for). Weights are the source's decoded values in
// `dtype`; norms and biases in f32, as mcw compress writes them.
//
// Memory: one block's tensors in `dtype` at a time (the embedding and head are the
// largest), decoded from the mapped source a few MB at a time. The directory appears
// complete or not at all.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/progress.h"

namespace mcw {

struct HfExportReport {
  DType dtype = DType::F16;
  int64_t shards = 0;
  uint64_t weight_bytes = 0;
  std::vector<std::string> tokenizer_files;  // written beside the weights
};

// dtype: F32, F16 or BF16; nullopt: the source's own when it is one of those, else F16 (the
// decoded values of 4-bit blocks and checkpoints are f16-exact far more often than bf16).
// Throws mcw::Error naming the file for what MCW cannot open, mcw::Cancelled on cancel.
HfExportReport export_hf(const std::string& model_path, const std::string& out_dir,
                         std::optional<DType> dtype = std::nullopt, const ProgressFn& progress = {},
                         const CancelToken* cancel = nullptr);

}  // namespace mcw
