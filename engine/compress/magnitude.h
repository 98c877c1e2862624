// Magnitude pruning: drop the weights with the smallest |w|. The data-free baseline that
// Wanda and SparseGPT are measured against.
#pragma once
#include "engine/compress/sparsity.h"

namespace mcw {

enum class MagnitudeScope {
  PerLayer,  // the smallest |w| of the whole matrix (the classic baseline; the default)
  PerRow,    // every output row loses the same fraction (as Wanda compares)
};

struct MagnitudeOptions {
  SparsityTarget target;  // N:M ignores scope: groups are always within a row
  MagnitudeScope scope = MagnitudeScope::PerLayer;
};

// w: 2-D [rows = out, cols = in], any dtype (converted to f32). The result is Dense with
// pruned weights zeroed and `mask` (plus nm_n/nm_m for N:M). Throws mcw::Error for a bad
// target or weight before doing any work, Cancelled when `cancel` fires.
CompressedTensor magnitude_prune(const Tensor& w, const MagnitudeOptions& options,
                                 const CancelToken* cancel = nullptr);

}  // namespace mcw
