// Wanda (Sun et al., 2023, "A Simple and Effective Pruning Approach for Large Language
// Models"): weight importance |W_ij|·‖X_j‖₂, where ‖X_j‖₂ is the norm of input channel j
// over the calibration tokens. Scores are compared within each output row (per-output
// sparsity) by default, which the paper found essential; no weight update follows.
#pragma once
#include "engine/compress/layer_stats.h"
#include "engine/compress/sparsity.h"

namespace mcw {

struct WandaOptions {
  SparsityTarget target;
  PruneScope scope = PruneScope::PerRow;
};

// w: 2-D [rows = out, cols = in]; stats: the layer's input statistics (sq_norm is used).
// Dense result with `mask`. Throws mcw::Error for a bad target, weight or statistics
// before any work, Cancelled when `cancel` fires.
CompressedTensor wanda_prune(const Tensor& w, const LayerStats& stats, const WandaOptions& options,
                             const CancelToken* cancel = nullptr);

}  // namespace mcw
