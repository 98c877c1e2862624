// Runs a project's recipes and records each in the run store: compress on the
// calibration text, evaluate on the evaluation text against the original model, measure
// latency, store metrics and per-layer metrics. Shared by `mcw run` and the studio.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/progress.h"
#include "engine/eval/latency.h"
#include "engine/eval/perplexity.h"
#include "engine/model/llama_model.h"
#include "engine/model/tokenizer.h"
#include "engine/ocr/ocr_eval.h"  // ImageLoader
#include "engine/project/project.h"
#include "engine/runs/run_store.h"

namespace mcw {

struct OnnxProjectInputs;  // onnx_project_runner.h

// Everything the runs of one project share, loaded once.
struct ProjectRunInputs {
  std::string project_file;
  Project project;
  std::string database_path;
  ModelFile file;
  LlamaModel base;
  std::string fingerprint;
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<int32_t> calibration_tokens;  // empty when the project has no calibration text
  std::vector<int32_t> evaluation_tokens;   // at most eval.max_tokens when that is set
  // The project's window and stride, shortened to the model's context where longer.
  EvalOptions eval;
  LatencyOptions latency;
  int64_t recovery_checkpoint_every = 25;  // steps between a recovery's checkpoints
  // A project whose model is an ONNX graph (*.onnx) and whose datasets are OCR sets
  // (folders): the graph and the sets; file, base, tokenizer and tokens stay empty.
  std::shared_ptr<const OnnxProjectInputs> onnx;
};

// Loads the project, its model, tokenizer and texts. Throws mcw::Error naming the file
// for a missing model or evaluation text (without one, no run can be scored).
// An ONNX project's images are decoded by `images` (the engine has no image codecs). The
// callers that pass none work on transformers only, and an ONNX project is an mcw::Error
// naming the file for them.
ProjectRunInputs load_project_run_inputs(const std::string& project_file,
                                         const ImageLoader& images = {});

struct RunHooks {
  std::function<void(const std::string& phase)> on_phase;  // "compress", "eval", "latency"
  ProgressFn progress;                                     // within the current phase
  std::function<void(const std::string& line)> log;        // worth keeping (a resumed run)
};

struct RecipeRunOutcome {
  int64_t run_id = 0;
  RunStatus status = RunStatus::Running;
  std::string error;  // for failed runs
  std::vector<Metric> metrics;
};

inline constexpr const char* kBaselineRecipe = "baseline";

// Records one run of `recipe` (running -> done / failed / cancelled). An mcw::Error (a bad
// recipe, missing calibration text) ends as a failed run with its message; a cancel as a
// cancelled run; anything else as a failed run and is rethrown.
// The compression is checkpointed after every block in a directory beside the run store
// named by what the run is (model, recipe as run, calibration tokens):
// ".mcw-run-<digest>.partial". A run stopped in any way (cancelled, killed, an error, a
// full disk) leaves it, and the next run of the same recipe on the same model goes on from
// its last finished block (saying so through hooks.log) with the same results; it is
// removed once a run gets past the compression.
// The compressions that stopped runs left beside `database_path` (see below): where, how
// far they got ("stage 1/1, 7 of 32 blocks done") and the disk they hold.
struct StoppedRunWork {
  std::string dir, progress;
  uint64_t bytes = 0;
};
std::vector<StoppedRunWork> stopped_run_work(const std::string& database_path);

RecipeRunOutcome run_project_recipe(RunStore& store, const ProjectRunInputs& in,
                                    const ProjectRecipe& recipe, const RunHooks& hooks = {},
                                    const CancelToken* cancel = nullptr);

// The reference point of plots: the uncompressed model (16 bits per weight, the same
// convention as compression accounting; KL 0, top-1 agreement 1). An ONNX graph's at its
// stored width (onnx_project_runner.h).
RecipeRunOutcome run_project_baseline(RunStore& store, const ProjectRunInputs& in,
                                      const RunHooks& hooks = {},
                                      const CancelToken* cancel = nullptr);
// True when the store holds a finished baseline run of this project on this model.
bool has_project_baseline(RunStore& store, const ProjectRunInputs& in);

}  // namespace mcw
