// Calibration statistics of one linear layer's input activations X [samples, cols],
// gathered while running calibration text through the model. Pruning (Wanda, SparseGPT),
// activation-aware low rank and the Hessian-based quantisers all read them.
#pragma once
#include <cstdint>
#include <vector>

namespace mcw {

struct LayerStats {
  int64_t cols;
  std::vector<double> xtx;      // cols*cols, XᵀX
  std::vector<double> sq_norm;  // per input channel Σx²
  std::vector<float> max_abs;
  int64_t samples;
};

}  // namespace mcw
