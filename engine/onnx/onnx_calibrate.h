// Calibration of an ONNX graph's layers (onnx_layers.h): the graph runs on each calibration
// input, and every layer's input is added to its statistics as the rows its weight matrix
// multiplies (a conv group's im2col patches, a MatMul's activation rows), so that GPTQ's
// Hessian of a conv layer is the im2col view's XᵀX. Also the range of each layer's whole
// input, for per-tensor activation quantisation.
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "engine/compress/layer_stats.h"
#include "engine/core/progress.h"
#include "engine/onnx/onnx_layers.h"
#include "engine/onnx/onnx_runner.h"
#include "engine/recipe/recipe.h"  // CalibrationNeed

namespace mcw {

using OnnxInputs = std::map<std::string, OnnxValue>;  // one run's graph inputs by name

struct OnnxLayerInputs {
  std::vector<LayerStats> groups;         // one per group of the layer
  float min = INFINITY, max = -INFINITY;  // over every input value seen
};

// Statistics of `layers`' inputs over `inputs`, as much as `need` asks: Gram adds XᵀX to
// the per-column Σx² and max|x| (InputNorms); None gathers only each input's range (no
// group statistics, no patches made). The runner's transforms apply (a layer sees its inputs
// as the runner feeds them). Checks `cancel` between inputs.
std::map<std::string, OnnxLayerInputs> calibrate_onnx_layers(const OnnxRunner& runner,
                                                             const std::vector<OnnxLayer>& layers,
                                                             const std::vector<OnnxInputs>& inputs,
                                                             CalibrationNeed need,
                                                             const ProgressFn& progress = {},
                                                             const CancelToken* cancel = nullptr);

// The rows a layer's input contributes, [n, cols] row-major for group `group` of `layer`,
// from the node's input value x (what calibrate_onnx_layers adds; exposed for tests).
std::vector<float> layer_input_rows(const OnnxModel& model, const OnnxLayer& layer,
                                    const OnnxValue& x, int64_t group, int64_t* n);

}  // namespace mcw
