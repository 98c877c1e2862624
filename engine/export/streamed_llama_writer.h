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
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/compress/compress_llama.h"
#include "engine/model/llama_save.h"

namespace mcw {

// What a checkpoint in a staging directory says (read_checkpoint).
struct CompressCheckpoint {
  nlohmann::json identity;  // the run it belongs to (model, recipe, calibration, ...)
  size_t stage = 0, stages = 0;
  int64_t next_block = 0, blocks = 0;
  std::string describe() const;  // "stage 1/1, 7 of 16 blocks done"
};

class StreamedLlamaWriter {
 public:
  // `dir` exists (a staging directory); matrices are written in `dtype` (F32, F16 or BF16),
  // vectors (norms, biases) in f32. With a run identity (any JSON naming the model, recipe
  // and calibration), the writer keeps a checkpoint after every resumable block: that
  // block's files, the next block's saved inputs and a manifest (.checkpoint.json, written
  // last and atomically), so that a run killed at any moment can go on from its last
  // finished block (resume()).
  StreamedLlamaWriter(std::string dir, DType dtype, nlohmann::json run_identity = nullptr);
  // For a model that is only evaluated and then thrown away (a project run): blocks are
  // written and mapped as usual, but the compressed layers keep their payloads (to run
  // on the packed kernels); finish() is not needed. With a run identity it keeps the
  // same checkpoints as above (each block's layers written to a packed part too, which
  // restore() reads their payloads back from), else no packed files are written.
  static StreamedLlamaWriter scratch(std::string dir, DType dtype,
                                     nlohmann::json run_identity = nullptr);

  void block_done(const BlockDone& done, CompressionResult& result);
  BlockDoneFn callback() {
    return [this](const BlockDone& d, CompressionResult& r) { block_done(d, r); };
  }
  // Writes the rest (the last shard, the index, config.json, packed.safetensors). Without a
  // run identity it then removes its part files; a resumable writer keeps them and its
  // checkpoint until discard_checkpoint(), so that a failure after finish() (writing the
  // caller's own files) still resumes.
  void finish(CompressionResult& result, const TokenizerFiles& tok = {});
  void discard_checkpoint();

  // The checkpoint in `dir`, if there is one (throws mcw::Error naming the file when it
  // is unreadable).
  static std::optional<CompressCheckpoint> read_checkpoint(const std::string& dir);
  // Where to go on from this directory's checkpoint, with a restore() that reads the done
  // blocks back (views of their files) and makes this writer continue the same output.
  // Throws mcw::Error naming the directory when there is no checkpoint or it belongs to
  // another run (saying what differs).
  ResumePoint resume();
  bool checkpointed() const { return checkpointed_; }

  // The dtype a compressed model of this source is written in: its own when 16-bit or
  // f32, f16 for GGUF block types.
  static DType output_dtype(const LlamaModel& source);

 private:
  std::string path(const std::string& name) const;
  std::string shard_name(int64_t index, int64_t count) const;
  // Writes `names` of the model and `extra` in the output dtype (or f32) to `path`, as HF
  // holds them (hf_fused), and points the model's tensors at the written file. Returns
  // the names the file holds.
  std::vector<std::string> write_and_map(CompressionResult& r, const std::vector<std::string>& names,
                     const std::string& path, DType matrices, std::vector<Tensor> extra = {});
  // streamed_llama_resume.cpp
  void write_checkpoint(const BlockDone& d, const CompressionResult& r);
  void restore(CompressionResult& r, const nlohmann::json& manifest);
  void collect_garbage();
  void remove_checkpoint();

  std::string dir_;
  DType dtype_;
  nlohmann::json identity_;
  std::vector<std::string> packed_parts_;
  // Checkpoints: the file holding each block as it stands, files a newer one replaced
  // (removed once a manifest no longer names them), the saved inputs of the next block.
  std::vector<std::string> block_file_;
  std::vector<std::string> garbage_;
  std::string hidden_file_;
  std::map<std::string, std::string> weight_map_;  // tensor -> shard file
  std::map<std::string, std::string> payload_of_;  // layer -> checkpoint file with its payload
  uint64_t total_bytes_ = 0;
  bool checkpointed_ = false;
  bool scratch_ = false;
};

}  // namespace mcw
