// A recipe run streamed into a Hugging Face model directory, resumable: what `mcw compress`
// and the studio's model export do with a real-size model. Before anything is written,
// the streaming run's memory estimate is checked against a budget; files are staged in
// "<out>.partial" (locked against a second writer), where a StreamedLlamaWriter keeps a
// checkpoint after every block, so that a run stopped in any way (killed, cancelled, an
// error, a full disk) goes on from its last finished block, and finish() moves the
// complete directory into place.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/compress/compress_llama.h"
#include "engine/compress/resource_estimate.h"
#include "engine/export/streamed_llama_writer.h"
#include "engine/io/model_file.h"
#include "engine/io/staging_dir.h"

namespace mcw {

class CompressToDirectory {
 public:
  enum class Resume {
    Never,       // a checkpoint in <out>.partial is refused (named, with how to go on)
    IfPossible,  // a checkpoint of this run is resumed; none: a fresh start
    Required,    // there must be a checkpoint of this run
  };
  struct Budget {
    uint64_t bytes = 0;  // 0: no check
    std::string from;    // who set it, for the refusal ("--max-memory"); empty: the system
  };

  // Throws mcw::Error (naming the model and the need) when the estimate exceeds the
  // budget, or naming <out>.partial when its checkpoint cannot be used as `resume` says.
  CompressToDirectory(const ModelFile& file, const LlamaModel& base, Recipe run,
                      std::vector<int32_t> calib, CompressOptions opt, const std::string& out,
                      Resume resume, const Budget& budget);
  CompressToDirectory(const CompressToDirectory&) = delete;
  CompressToDirectory& operator=(const CompressToDirectory&) = delete;

  const ResourceEstimate& estimate() const { return estimate_; }
  const std::optional<CompressCheckpoint>& resumed_from() const { return resumed_from_; }
  std::string staging_path() const { return staging_->path().string(); }

  // compress_llama with the writer and, when resuming, the checkpoint; a stopped run
  // (mcw::Cancelled, mcw::Error) keeps its last checkpoint.
  CompressionResult compress(const ProgressFn& progress = {}, const CancelToken* cancel = nullptr);
  // "stage 1/1, 7 of 16 blocks done kept in <out>.partial", or empty when nothing is kept.
  std::string kept() const;
  // Writes the rest (head, index, config, packed layers), the tokenizer files, recipe.yaml
  // and `text_files` (name, content), then moves the directory into place.
  void finish(CompressionResult& result, const std::vector<std::pair<std::string, std::string>>& text_files = {});

 private:
  const ModelFile& file_;
  const LlamaModel& base_;
  Recipe run_;
  std::vector<int32_t> calib_;
  CompressOptions opt_;
  ResourceEstimate estimate_;
  std::optional<StagingDir> staging_;
  std::optional<CompressCheckpoint> resumed_from_;
  std::optional<StreamedLlamaWriter> writer_;
};

// The estimate of compressing `base` with `run` streamed block by block (mapped weights,
// one block in f32, activations in the dtype `opt` gives); with `run_eval_window` > 0, of a
// project run that then evaluates in windows of that many tokens and measures latency.
ResourceEstimate streamed_compress_estimate(const LlamaModel& base, const Recipe& run, const CompressOptions& opt,
                                            int64_t run_eval_window = 0);
// Throws mcw::Error naming `model_path` and how much memory compressing with `run` needs
// when `e` exceeds the budget (a budget of 0 bytes checks nothing).
void check_compress_memory(const std::string& model_path, const Recipe& run, const ResourceEstimate& e,
                           const CompressToDirectory::Budget& budget);

// What makes two runs the same run: the model (its model_fingerprint, the key runs and
// sensitivity results use), the recipe as run (not its name), the calibration tokens and
// the output dtype.
nlohmann::json compress_run_identity(const ModelFile& file, const Recipe& run,
                                     std::span<const int32_t> calib, DType dtype);

}  // namespace mcw
