// Runs a recipe on a llama model: stage by stage, each compressing the linear weights its
// targets name, with block-wise sequential calibration for the methods that need
// activation statistics. The result keeps every CompressedTensor (for accounting and
// export) and a model whose weights are what those tensors decode to (for evaluation).
// Structured stages ("heads", "channels") replace the model by a smaller one: the stages
// after them, and the accounting, see the smaller shapes.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/compress/calibrate.h"  // ForwardTally
#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"
#include "engine/recipe/recipe.h"

namespace mcw {

class ActivationStore;

struct CompressedLayer {
  CompressedTensor tensor;
  std::string algorithm;
  // Output error relative to the original layer on the calibration inputs,
  // tr(ΔW·XᵀX·ΔWᵀ) / tr(W·XᵀX·Wᵀ), or ‖ΔW‖²/‖W‖² when no calibration ran; Wanda and
  // k-means, which gather no XᵀX, its diagonal (Σ_ij ΔW_ij²·Σx_j² over the same). Structured
  // stages: o_proj/down_proj carry the diagonal estimate Σ_removed var_j‖W_j‖² /
  // Σ_j E[x_j²]‖W_j‖² (after bias compensation); the row-sliced q/k/v/gate/up the share of
  // ‖W‖² removed. SmoothQuant: ‖ΔW‖²/‖W‖² against the smoothed weight.
  double relative_error = 0;
  bool error_on_activations = false;
  // Taken from the tensor when it is recorded, so that they outlive its payload (a
  // streaming caller drops codes and scales once written; see BlockDoneFn).
  uint64_t storage_bits = 0;
  double bits_per_weight = 0;
  std::string scheme;
};

struct CompressionResult {
  LlamaModel model;
  std::vector<CompressedLayer> layers;  // in model order
  uint64_t original_bits = 0;  // every weight at 16 bits
  uint64_t storage_bits = 0;   // compressed linears + the rest at 16 bits
  uint64_t parameters = 0;
  double seconds = 0;
  ForwardTally calibration_forward;  // the calibration passes' own forward work
  double bits_per_weight() const { return parameters ? double(storage_bits) / double(parameters) : 0; }
};

// Streaming: called in layer order as soon as decoder block `layer` is final for stage
// `stage` (of `stages`), with the result so far. The callee may
// write the block's weights and its CompressedLayers out, replace the block's tensors in
// result.model by views of what it wrote and drop the layers' payloads (codes, scales),
// so that memory holds one block at a time; later stages and evaluation read the views.
// `resumable`: a run stopped now can go on from here (ResumePoint {stage, layer + 1}):
// false for all but the last block of a whole-model stage (structured pruning),
// which hands its blocks over only once the whole stage is done. `hidden`: for calibrated
// stages, the inputs of the next block, which a resumed run needs.
struct BlockDone {
  size_t stage = 0, stages = 1;
  int64_t layer = 0;
  bool last() const { return stage + 1 == stages; }
  bool resumable = true;
  const ActivationStore* hidden = nullptr;
};
using BlockDoneFn = std::function<void(const BlockDone& done, CompressionResult& result)>;

// Where a stopped run goes on: stages before `stage` are done, and so are that stage's
// blocks before `next_block`. restore() is given the fresh result (the base model, with
// the shapes the done structured stages leave) and puts back what the stopped run had:
// the blocks' tensors, act_int8 bits and the CompressedLayers so far. hidden_path: the
// saved inputs of `next_block` (BlockDone::hidden), when the stage is calibrated and
// next_block > 0. The resumed result is identical to an uninterrupted run's.
struct ResumePoint {
  size_t stage = 0;
  int64_t next_block = 0;
  std::string hidden_path;
  std::function<void(CompressionResult&)> restore;
};

struct CompressOptions {
  int64_t calib_windows = 64;   // a recipe's calibration section overrides these
  int64_t calib_window = 256;
  // Calibration activations between blocks: in bf16 (half the memory; what the model's
  // own 16-bit runtime keeps) or f32. Default: bf16 when the model's weights are 16-bit
  // (or narrower) in their file, f32 for f32 models (so that their results stay exact).
  enum class Activations { Auto, F32, BF16 } activations = Activations::Auto;
  // Past this many bytes, those activations live in an unlinked scratch file in
  // `scratch_dir` (empty: the system's temporary directory), mapped: page cache, which the
  // kernel can write back and drop, instead of anonymous memory (128 x 2048 tokens of a
  // 4096-wide model are 2 GiB in bf16). The results are the same either way.
  uint64_t activation_budget = uint64_t(512) << 20;
  std::string scratch_dir;
  BlockDoneFn block_done;
  std::optional<ResumePoint> resume;
};

// The dtype calibration activations are kept in for `model` under `choice` (Auto: bf16
// when its weights are 16-bit or narrower in their file, f32 for f32 models).
DType calibration_activation_dtype(const LlamaModel& model, CompressOptions::Activations choice);

// True when some stage needs calibration text (statistics of layer inputs).
bool recipe_needs_calibration(const Recipe& recipe);

// Throws mcw::Error naming the recipe file and stage for anything it cannot do, before
// any weight is touched; mcw::Cancelled when cancelled.
CompressionResult compress_llama(const LlamaModel& base, const Recipe& recipe,
                                 std::span<const int32_t> calib_tokens, const CompressOptions& opt,
                                 const ProgressFn& progress = {}, const CancelToken* cancel = nullptr);

}  // namespace mcw
