// The recipe stage "smoothquant": W8A8 for a llama model in one sequential calibration
// pass. Per block, the q/k/v and gate/up groups get migration scales s from the maximum
// |x| of each input channel (engine/compress/smoothquant.h), folded into the RMSNorm in
// front of the group (norm /= s) and into the group's weights (W·diag(s)) — the same
// function in f32. Then every targeted linear is quantised per output channel to int8 and
// its input is marked for per-token int8 fake quantisation at inference (LlamaLayer::
// act_int8). o_proj and down_proj have no foldable op in front: they are quantised W8A8
// without smoothing, as in the SmoothQuant paper.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "engine/compress/calibrate.h"
#include "engine/compress/structured_stage.h"  // RecordWeightFn

namespace mcw {

// norm[j] /= s[j] and W[:, j] *= s[j] for every weight fed by that norm.
void fold_smoothing(Tensor& norm, const std::vector<Tensor*>& weights, const std::vector<float>& s,
                    Tensor* norm_bias = nullptr);

struct SmoothQuantStageOptions {
  float alpha = 0.5f;
  bool smooth = true;    // false: plain W8A8
  bool quantize = true;  // false: smoothing only (weights and activations stay f32)
};

// `targeted`: the linear weights (HF names) to quantise. A group is smoothed, and its input
// quantised, when any of its linears is targeted; its other linears are rescaled with it.
// Block by block (sequential_calibrate with `calibration`): `block_done` hears of each
// finished block, as CalibrationHooks::block_done, so that a streaming caller can write it.
void run_smoothquant_stage(LlamaModel& model, const SmoothQuantStageOptions& o,
                           const std::set<std::string>& targeted,
                           const std::vector<std::vector<int32_t>>& windows,
                           const RecordWeightFn& record = {}, const ProgressFn& progress = {},
                           const CancelToken* cancel = nullptr, const CalibrationOptions& calibration = {},
                           const std::function<void(int64_t, const ActivationStore&)>& block_done = {});

}  // namespace mcw
