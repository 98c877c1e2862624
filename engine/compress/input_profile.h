// How the inputs of each group of linear layers are spread over their channels, measured
// on calibration text: the norm ‖X_j‖₂ of every input channel j and its largest |x|.
// Activation-aware methods (Wanda, AWQ, SmoothQuant) differ from their data-free
// counterparts only as far as these norms differ between channels, so the profile says
// before any run whether they can help: LLMs of billions of parameters carry a few
// "outlier feature" channels far above the rest; small models usually do not.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/compress/calibrate.h"

namespace mcw {

struct InputProfile {
  LinearGroup group;         // the linears reading this input
  std::vector<double> norm;  // ‖X_j‖₂ over the calibration tokens, per input channel
  std::vector<float> max_abs;  // max |X_j|, per input channel
  int64_t tokens = 0;

  // Ratios of the channel norms: largest and 99th percentile over the median, largest over
  // smallest (a dead channel gives infinity).
  double max_over_median() const;
  double p99_over_median() const;
  double max_over_min() const;
  // Channels where some |x| reaches `threshold` (LLM.int8()'s outlier rule uses 6).
  int64_t channels_reaching(float threshold) const;
};

// Runs the windows through an unmodified copy of the model, one profile per linear group
// in model order.
std::vector<InputProfile> profile_linear_inputs(const LlamaModel& model,
                                                const std::vector<std::vector<int32_t>>& windows,
                                                const ProgressFn& progress = {},
                                                const CancelToken* cancel = nullptr);

}  // namespace mcw
