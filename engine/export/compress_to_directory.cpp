#include "engine/export/compress_to_directory.h"

#include <cstdlib>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/core/memory_usage.h"
#include "engine/core/sha256.h"
#include "engine/runs/fingerprint.h"
#include "engine/io/tokenizer_files.h"
#include "engine/model/tokenizer_loader.h"

namespace fs = std::filesystem;

namespace mcw {

ResourceEstimate streamed_compress_estimate(const LlamaModel& base, const Recipe& run, const CompressOptions& opt,
                                            int64_t run_eval_window) {
  EstimateSettings es;
  es.run_eval_window = run_eval_window;
  es.calib_windows = opt.calib_windows, es.calib_window = opt.calib_window;
  es.streamed = true;
  es.activation_bytes = calibration_activation_dtype(base, opt.activations) == DType::BF16 ? 2 : 4;
  es.activation_budget = opt.activation_budget;
  return estimate_resources(model_shape(base.cfg), run, es);
}

void check_compress_memory(const std::string& model_path, const Recipe& run, const ResourceEstimate& e,
                           const CompressToDirectory::Budget& budget) {
  if (!budget.bytes || e.peak_bytes <= budget.bytes) return;
  throw Error(model_path, "compressing with '" + run.name + "'" +
                              (e.evaluation_bytes ? " and evaluating the result" : "") + " needs about " +
                              human_bytes(e.peak_bytes) +
                              " of memory, and " + (budget.from.empty() ? "the system has " : budget.from + " allows ") +
                              human_bytes(budget.bytes) + (budget.from.empty() ? " available" : "") +
                              (recipe_needs_calibration(run) ? " (fewer calibration windows need less)" : ""));
}

nlohmann::json compress_run_identity(const ModelFile& file, const Recipe& run, std::span<const int32_t> calib,
                                     DType dtype) {
  Sha256 tokens;
  tokens.update(calib.data(), calib.size_bytes());
  Recipe what = run;  // what runs, not what it is called
  what.name.clear(), what.description.clear();
  return {{"format", 3},  // of this identity: a checkpoint of another format is another mcw's
          {"model", model_fingerprint(file)},
          {"recipe", recipe_to_yaml(what)},
          {"calibration", {{"tokens", calib.size()}, {"sha256", to_hex(tokens.finish())}}},
          {"dtype", dtype_name(dtype)}};
}

CompressToDirectory::CompressToDirectory(const ModelFile& file, const LlamaModel& base, Recipe run,
                                         std::vector<int32_t> calib, CompressOptions opt, const std::string& out,
                                         Resume resume, const Budget& budget)
    : file_(file), base_(base), run_(std::move(run)), calib_(std::move(calib)), opt_(std::move(opt)),
      estimate_(streamed_compress_estimate(base, run_, opt_)) {
  check_compress_memory(file.path, run_, estimate_, budget);
  StagingDir& staging = staging_.emplace(out, StagingDir::Mode::Resumable);
  const std::string dir = staging.path().string();
  if (opt_.scratch_dir.empty()) opt_.scratch_dir = dir;  // spilled activations beside the output
  if (!fs::is_empty(staging.path())) staging.keep_on_failure();  // never lose a stopped run's work
  const auto checkpoint = StreamedLlamaWriter::read_checkpoint(dir);
  if (resume == Resume::Required && !checkpoint)
    throw Error(dir, "holds no checkpoint to resume (run again without --resume)");
  if (resume == Resume::Never && checkpoint)
    throw Error(dir, "holds a stopped run (" + checkpoint->describe() +
                         "): add --resume to go on with it, or remove the directory to start over");
  if (!checkpoint) staging.clear(), staging.keep_on_failure(false);
  const DType dtype = StreamedLlamaWriter::output_dtype(base);
  // Each finished block goes to disk at once, in the source's dtype: memory holds one block.
  writer_.emplace(dir, dtype, compress_run_identity(file, run_, calib_, dtype));
  if (checkpoint) {
    opt_.resume = writer_->resume();  // throws when the checkpoint is another run's
    resumed_from_ = checkpoint;
  }
  BlockDoneFn chained = std::move(opt_.block_done);  // a caller's (a test's fault injection)
  opt_.block_done = [this, chained](const BlockDone& d, CompressionResult& r) {
    writer_->block_done(d, r);
    if (writer_->checkpointed()) staging_->keep_on_failure();
    if (chained) chained(d, r);
  };
}

// An error after a checkpoint says where the work is kept.
[[noreturn]] static void rethrow_noting(const Error& e, const std::string& kept) {
  if (!kept.empty()) throw Error(e.file(), e.message() + " (" + kept + ")", e.offset());
  throw e;
}

CompressionResult CompressToDirectory::compress(const ProgressFn& progress, const CancelToken* cancel) {
  try {
    return compress_llama(base_, run_, calib_, opt_, progress, cancel);
  } catch (const Error& e) {
    rethrow_noting(e, kept());
  }
}

std::string CompressToDirectory::kept() const {
  const auto ck = StreamedLlamaWriter::read_checkpoint(staging_->path().string());
  return ck ? ck->describe() + " kept in " + staging_->path().string() : "";
}

void CompressToDirectory::finish(CompressionResult& result,
                                 const std::vector<std::pair<std::string, std::string>>& text_files) {
  try {
    writer_->finish(result);
    write_tokenizer_files(file_, staging_->path().string());
    write_text_file(staging_->file("recipe.yaml"), recipe_to_yaml(run_));
    for (const auto& [name, text] : text_files) write_text_file(staging_->file(name), text);
  } catch (const Error& e) {
    rethrow_noting(e, kept());
  }
  writer_->discard_checkpoint();
  staging_->keep_on_failure(false);
  staging_->commit();
}

}  // namespace mcw
