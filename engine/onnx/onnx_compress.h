// Runs a recipe on an ONNX graph: each stage's layer-wise algorithm (those of the registry
// with compress_layer: rtn, gptq, magnitude, wanda, sparsegpt, kmeans, svd, channel_obs) on
// the layers its targets name (onnx_layers.h; a stage
// without targets takes every layer), then, when the recipe has an `activations` section,
// static per-tensor quantisation of those layers' inputs.
//
// - A stage that reads statistics calibrates once, on the graph as the stages before it
//   left it, for all its layers together (as OBC and GPTQ's CNN experiments do); each conv
//   group is its own linear with its own XᵀX.
// - A layer whose columns a stage's group_size does not divide (a 5 x 5 depthwise filter
//   has 25) takes fit_group_size's (a smaller group of 64 or 32 that divides, else one grid
//   per output channel, as the sensitivity scan does), and its scheme says so.
// - Activations: the range of each layer's input over the calibration inputs, on the
//   graph with every weight stage applied, gives one grid per tensor: unsigned codes with a
//   zero point (the range stretched to hold 0) or, symmetric, signed codes with max|x| at
//   2^(b−1) − 1 (saturating at −2^(b−1), as QuantizeLinear), as onnxruntime's MinMax
//   calibration makes them; scales stay f32.
// Every problem (an algorithm that needs a transformer, a target matching no layer, a
// stage needing calibration inputs without any) is an mcw::Error naming the recipe and the
// stage before any weight is touched.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"
#include "engine/onnx/onnx_calibrate.h"
#include "engine/recipe/recipe.h"

namespace mcw {

struct OnnxCompressedLayer {
  OnnxLayer layer;
  std::vector<CompressedTensor> parts;  // one per group, rows of the group's matrix
  std::string algorithm, scheme;
  // As CompressedLayer's, over all groups: the output error on the calibration inputs when
  // the stage read statistics (error_on_activations), else ‖ΔW‖²/‖W‖².
  double relative_error = 0;
  bool error_on_activations = false;
  uint64_t storage_bits = 0;
};

// A layer's input quantised on one grid: x ≈ scale·(q − zero), q in [qmin, qmax].
struct OnnxActivationQuant {
  std::string layer;
  size_t node = 0;
  int bits = 8;
  bool symmetric = false;
  float scale = 1, zero = 0, qmin = 0, qmax = 255;
  float min = 0, max = 0;  // the calibrated range
};

struct OnnxCompression {
  std::map<std::string, OnnxValue> weights;  // each compressed layer's decoded weight
  std::vector<OnnxCompressedLayer> layers;   // in graph order
  std::vector<OnnxActivationQuant> activations;
  uint64_t parameters = 0;  // onnx_weight_size's
  uint64_t original_bits = 0;
  uint64_t storage_bits = 0;   // compressed layers as stored, the rest as they were
  double seconds = 0;
};

// A graph's weights as stored: the floating-point initializers and Constants (integer ones
// are shapes and indices, not parameters) and their bits at their dtype's width.
struct OnnxWeightSize {
  uint64_t parameters = 0, bits = 0;
};
OnnxWeightSize onnx_weight_size(const OnnxModel& model);

OnnxCompression compress_onnx(const OnnxModel& model, const Recipe& recipe,
                              const std::vector<OnnxInputs>& calibration,
                              const ProgressFn& progress = {}, const CancelToken* cancel = nullptr);

// The grid of a tensor with range [min, max] (see above).
OnnxActivationQuant activation_grid(float min, float max, int bits, bool symmetric);
// x ← scale·(clamp(round_half_even(x/scale) + zero, qmin, qmax) − zero), in place.
void fake_quantize(OnnxValue& x, const OnnxActivationQuant& q);

// The graph as compressed: decoded weights, and the layers' inputs fake-quantised. With
// `packed`, the layers onnx_packed.h packs multiply with their packed weights (the same
// graph on the deployment kernels; int8 activations in their integer products).
OnnxRunner compressed_runner(const OnnxModel& model, const OnnxCompression& c, bool packed = false);
// The same, sharing `original`'s converted weights and c's decoded ones instead of copying
// the model again: both must outlive the runner.
OnnxRunner compressed_runner(const OnnxRunner& original, const OnnxCompression& c,
                             bool packed = false);

}  // namespace mcw
