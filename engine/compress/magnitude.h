// Magnitude pruning: drop the weights with the smallest |w|. The data-free baseline that
// Wanda and SparseGPT are measured against.
#pragma once
#include "engine/compress/sparsity.h"

namespace mcw {

struct MagnitudeOptions {
  SparsityTarget target;
  // The classic baseline (and the Wanda paper's) compares across the whole matrix.
  PruneScope scope = PruneScope::PerLayer;
};

// w: 2-D [rows = out, cols = in], any dtype (converted to f32). The result is Dense with
// pruned weights zeroed and `mask` (plus nm_n/nm_m for N:M). Throws mcw::Error for a bad
// target or weight before doing any work, Cancelled when `cancel` fires.
CompressedTensor magnitude_prune(const Tensor& w, const MagnitudeOptions& options,
                                 const CancelToken* cancel = nullptr);

}  // namespace mcw
