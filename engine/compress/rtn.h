// Round-to-nearest weight quantisation of one linear layer W [rows = out, cols = in] onto
// the affine grid of affine_quantizer.h, with an optional clipping search per group.
//
// Scopes, all stored as CompressedTensor Affine coding:
// - PerTensor: one grid for the whole matrix. CompressedTensor has no per-tensor field, so
//   the result is written per channel (group_size = cols) with the same scale (and zero)
//   in every row; storage_bits() therefore counts rows − 1 redundant scales.
// - PerChannel: one grid per output row (group_size = cols).
// - Group: one grid per `group_size` consecutive columns of a row; group_size must divide
//   cols (32, 64, 128 are the usual ones).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/compress/affine_quantizer.h"
#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"

namespace mcw {

enum class QuantScope { PerTensor, PerChannel, Group };

struct RtnOptions {
  int bits = 4;
  bool symmetric = false;
  QuantScope scope = QuantScope::Group;
  int64_t group_size = 128;  // Group scope only
  ClipSearch clip;           // MSE-optimal clipping per group (per matrix for PerTensor)
};

// col_weight: optional per-input-column importance (e.g. diag XᵀX) weighting the clipping
// search's squared error; null means unweighted. Checks cancel between rows.
CompressedTensor quantize_rtn(const float* w, int64_t rows, int64_t cols, const RtnOptions& opt,
                              const double* col_weight = nullptr,
                              const CancelToken* cancel = nullptr, std::string name = {});

// Affine CompressedTensor of w on given grids, one per (row, group) of `group_size`
// consecutive columns, row-major: params[r * (cols / group_size) + g].
CompressedTensor encode_affine(const float* w, int64_t rows, int64_t cols, int64_t group_size,
                               int bits, bool symmetric, const std::vector<AffineParams>& params,
                               std::string name = {});

}  // namespace mcw
