// The sensitivity scan of an ONNX graph: each layer (onnx_layers.h) compressed alone at each
// setting of the transformer scan (RTN w<bits>[g<group>], magnitude s<percent>; no
// calibration), its cell the distance of the graph's first output from the original's on
// the evaluation inputs:
// - a recogniser's output holds probability distributions along its last axis (rows that
//   are non-negative and sum to 1): the mean KL(original || compressed) per row, in nats;
// - anything else (a detector's probability map): Σ(y' − y)² / Σy².
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/onnx/onnx_calibrate.h"
#include "engine/runs/run_store.h"
#include "engine/search/sensitivity_scan.h"

namespace mcw {

// One cell as the scan reads it back or measures it.
struct OnnxSensitivityCell {
  std::string layer, setting;
  double value = 0;
  uint64_t bits = 0;
  bool kl = false, cached = false;
};

// Where cells go beside the result: with a store, each cell is read back when the store
// holds it for this model (fingerprint) and these inputs, and written when measured, as
// "kl@<measurement>" (or "map@<measurement>", a detector's relative error) and
// "bits@<measurement>", measurement = "onnx<inputs>#<SHA-256 of the inputs' values>": what
// the studio's heat map reads (app/studio/sensitivity_data.h).
struct OnnxSensitivityOptions {
  RunStore* store = nullptr;
  std::string fingerprint;
  std::function<void(const OnnxSensitivityCell&)> on_cell;  // on the calling thread
};

struct OnnxSensitivity {
  std::vector<OnnxLayer> layers;      // rows, in graph order
  std::vector<ScanSetting> settings;  // columns
  std::vector<double> value;          // layers x settings, row-major
  std::vector<uint64_t> bits;         // the compressed layer's storage bits, same order
  bool kl = false;                    // the measure: KL, else relative squared error
  size_t cached = 0;                  // cells read back from the store
  double at(size_t layer, size_t setting) const { return value[layer * settings.size() + setting]; }
};

// Throws mcw::Error for a setting no layer-wise algorithm runs, or without inputs.
OnnxSensitivity onnx_sensitivity(const OnnxModel& model, const std::vector<ScanSetting>& settings,
                                 const std::vector<OnnxInputs>& inputs,
                                 const ProgressFn& progress = {},
                                 const CancelToken* cancel = nullptr,
                                 const OnnxSensitivityOptions& options = {});

// The measure between two outputs of the same shape (see above); `kl` says which was used.
double output_distance(const OnnxValue& original, const OnnxValue& compressed, bool* kl);

}  // namespace mcw
