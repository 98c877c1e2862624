// llama.cpp's importance matrix ("imatrix"), measured by MCW: for every linear weight, the
// mean of x_j² over the calibration tokens for each input column j (what llama-imatrix
// stores, in_sum2 / count). llama-quantize --imatrix weights each value's rounding error by
// it, so the columns that carry large activations are quantised more carefully.
// As llama-imatrix does by default, the output matrix is not measured (its --process-output
// is off) and the token embedding has no input to measure: both are quantised unweighted.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/core/progress.h"
#include "engine/model/llama_model.h"

namespace mcw {

using ImportanceMatrix = std::map<std::string, std::vector<float>>;  // HF weight name -> per column

// Runs `windows` through the model (calibrate.h's forward, one block at a time) and returns
// each linear weight's mean x_j². Linears sharing an input (q/k/v, gate/up) share the entry.
ImportanceMatrix measure_importance(const LlamaModel& model,
                                    const std::vector<std::vector<int32_t>>& windows,
                                    const ProgressFn& progress = {},
                                    const CancelToken* cancel = nullptr);

}  // namespace mcw
