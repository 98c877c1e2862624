// Calibration statistics of one linear layer's input X [samples, cols], accumulated in f64
// by the caller over the calibration set. Quantisation (GPTQ, AWQ, SmoothQuant) and
// pruning (Wanda, SparseGPT) read what they need from it.
#pragma once
#include <cstdint>
#include <vector>

namespace mcw {

struct LayerStats {
  int64_t cols;
  std::vector<double> xtx;      // cols*cols, or empty when not gathered (Wanda, k-means)
  std::vector<double> sq_norm;  // per input channel Σx²
  std::vector<float> max_abs;
  int64_t samples;
};

}  // namespace mcw
