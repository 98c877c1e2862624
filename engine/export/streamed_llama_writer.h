// Writes a compressed llama model as compress_llama finishes it, block by block (its
// BlockDoneFn), so that a real-size model never sits in memory whole: each finished block
// becomes one shard of a Hugging Face sharded checkpoint (model-0000L-of-0000N.safetensors,
// in the output dtype) and one packed file of its compressed layers; the block's weights in
// the result are then replaced by views of the shard and its layers' payloads dropped.
// Blocks of an earlier stage of a multi-stage recipe go to an unnamed f32 scratch shard
// instead (mapped, so page cache rather than anonymous memory holds them). finish() writes
// the rest (embeddings, final norm, head), the shard index, config.json and
// packed.safetensors (the per-block packed files merged).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/compress/compress_llama.h"
#include "engine/model/llama_save.h"

namespace mcw {

class StreamedLlamaWriter {
 public:
  // `dir` exists (a staging directory); matrices are written in `dtype` (F32, F16 or BF16),
  // vectors (norms, biases) in f32.
  StreamedLlamaWriter(std::string dir, DType dtype);

  void block_done(int64_t layer, bool last, CompressionResult& result);
  BlockDoneFn callback() {
    return [this](int64_t l, bool last, CompressionResult& r) { block_done(l, last, r); };
  }
  void finish(CompressionResult& result, const TokenizerFiles& tok = {});

  // The dtype a compressed model of this source is written in: its own when 16-bit or
  // f32, f16 for GGUF block types.
  static DType output_dtype(const LlamaModel& source);

 private:
  std::string shard_name(int64_t index, int64_t count) const;
  // Writes `names` of the model in the output dtype (or f32) to `path` and points the
  // model's tensors at the written file.
  void write_and_map(CompressionResult& r, const std::vector<std::string>& names,
                     const std::string& path, DType matrices, std::vector<Tensor> extra = {});

  std::string dir_;
  DType dtype_;
  std::vector<std::string> packed_parts_;
  std::map<std::string, std::string> weight_map_;  // tensor -> shard file
  uint64_t total_bytes_ = 0;
};

}  // namespace mcw
