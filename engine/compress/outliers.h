// SpQR-like outliers: after a layer is quantised, the weights whose quantisation error
// matters most are kept exactly (as f16) in CompressedTensor's sparse side table.
// Importance of weight (r, c): col_weight[c]·(w − ŵ)², col_weight = diag XᵀX (the layer
// output error a single weight causes) or null for plain squared error. Each outlier costs
// 48 bits (32-bit index + f16 value), which storage_bits() counts.
#pragma once
#include <cstdint>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"

namespace mcw {

struct OutlierOptions {
  double fraction = 0.01;  // of all weights, rounded to the nearest count
  // Affine coding only: a group's unique extreme weights are also scored by their error on
  // the grid of the rest of the group, and each (row, group) grid that lost outliers is
  // re-fitted to the remaining weights (narrower range, finer steps) and re-coded. Codes
  // made by GPTQ lose their error compensation in those groups: meant for RTN codes.
  bool requantize = false;
};

// Replaces q's outliers. q must be Affine or Codebook coding of the original weight w
// [q.rows, q.cols]. Ties in importance go to the lower flat index, so the outlier sets
// of increasing fractions are nested.
void add_outliers(CompressedTensor& q, const float* w, const double* col_weight,
                  const OutlierOptions& opt, const CancelToken* cancel = nullptr);

}  // namespace mcw
