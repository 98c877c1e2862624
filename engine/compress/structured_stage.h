// The recipe stages "heads" and "channels": structured pruning of every layer in one
// calibration pass. As each block is reached, the statistics of its o_proj (or down_proj)
// input give every unit its importance; the least important units are removed in masked
// form (their columns zeroed, their mean contribution added to the output bias). The
// statistics come from the model before the stage (FLAP's setting) or, as an option, from
// the blocks already pruned. Each block is then sliced to its smaller dense shape, which
// computes exactly what the masked block computed. The same fraction is removed from
// every layer (FLAP's UL-UM structure); the "flap" stage (flap_stage.h) allocates across
// layers (AL-AM).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/compress/calibrate.h"
#include "engine/compress/compressed_tensor.h"
#include "engine/compress/structured.h"
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"

namespace mcw {

struct StructuredStageOptions {
  bool heads = true;  // attention units; false: MLP intermediate channels
  double fraction = 0.25;
  StructuredScore score = StructuredScore::Flap;
  bool compensate = true;  // bias compensation (off only to measure what it buys)
  // FLAP's code sums the squares of a head's channel scores (its o_proj metric ** 2).
  bool square_head_scores = true;
  // Statistics (scores and the compensation's means) from the model before the stage, as
  // FLAP gathers them; false: from the blocks already pruned (the wanda-sp baseline's order).
  bool uncompressed_inputs = true;
};

// Units removed from each layer by these options on a model of config `c`.
std::vector<int64_t> structured_removal_counts(const LlamaConfig& c,
                                               const StructuredStageOptions& o);
// The config after the stage.
LlamaConfig structured_config(const LlamaConfig& c, const StructuredStageOptions& o);

// name, the weight as now stored, relative error, whether measured on activations.
using RecordWeightFn = std::function<void(const std::string&, CompressedTensor, double, bool)>;

// A weight a structured stage changed: its relative error, and whether that was measured on
// activations (o_proj/down_proj) or is the weight-side share of the rows it lost.
struct SlicedWeight {
  std::string name;
  double error = 0;
  bool on_activations = false;
};
// After block `layer` was sliced: its tensors take their HF names, and each changed weight
// is reported as Dense in its new shape.
void report_sliced_block(LlamaModel& model, int64_t layer, const std::vector<SlicedWeight>& changed,
                         const RecordWeightFn& record);

// Removes the units from every layer of `model` (its blocks may be mapped in the file's
// dtype: each becomes f32 only when its statistics are complete, and is sliced as soon as
// the pass leaves it, then handed to block_done) and reports each touched weight (q/k/v/o
// or gate/up/down) as Dense in its new shape. The returned plan lists the removed units
// (attention) or channels (MLP) of each layer.
std::vector<std::vector<int64_t>> run_structured_stage(
    LlamaModel& model, const StructuredStageOptions& o,
    const std::vector<std::vector<int32_t>>& windows, const RecordWeightFn& record = {},
    const ProgressFn& progress = {}, const CancelToken* cancel = nullptr,
    const CalibrationOptions& calibration = {},
    const std::function<void(int64_t layer)>& block_done = {});

}  // namespace mcw
