// How far a compressed linear's output moves from the original's on the calibration inputs:
// tr(ΔW·H·ΔWᵀ) against tr(W·H·Wᵀ) with H = XᵀX; with only its diagonal (Σx² per input, for
// methods that gather no XᵀX: Wanda, k-means), Σ ΔW_ij²·Σx_j² against Σ W_ij²·Σx_j²; without
// statistics, ‖ΔW‖² against ‖W‖². Kept as the two sums so that the parts of one layer (an
// ONNX conv's groups) add up before the ratio is taken.
#pragma once
#include <cstdint>

#include "engine/compress/layer_stats.h"

namespace mcw {

struct LayerError {
  double change = 0, signal = 0;  // the two sums
  double relative() const { return signal > 0 ? change / signal : 0; }
  LayerError& operator+=(const LayerError& o) {
    change += o.change, signal += o.signal;
    return *this;
  }
};

// w, q: [rows, cols] row-major, the original and the compressed weight.
LayerError layer_error(const float* w, const float* q, int64_t rows, int64_t cols,
                       const LayerStats* stats);

}  // namespace mcw
