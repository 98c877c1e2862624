// SparseGPT (Frantar & Alistarh, 2023, "SparseGPT: Massive Language Models Can Be
// Accurately Pruned in One-Shot"): prune a linear layer and update the weights that remain
// so that the layer's output on the calibration inputs, W·Xᵀ, changes as little as
// possible. It is Optimal Brain Surgeon with the Hessian H = XᵀX, made cheap by fixing
// columns left to right: the inverse Hessians of the shrinking column sets are rows of the
// upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), so no inverse is recomputed. Per column j:
//   q = kept ? w_j (or its quantised value) : 0,  e = (w_j - q) / U_jj,
//   w_{j+1..} -= e · U_{j, j+1..}.
// Updates inside a block of B columns are applied at once; the rest of the matrix gets
// them lazily as one GEMM per block (Err[rows, B] · U[block, after]).
// The mask is chosen adaptively when a block starts, from the weights as updated so far:
// score w²/U_jj², the smallest `sparsity` of the block's rows × B scores pruned (so the
// sparsity of each block, and of the whole layer, is exact; rows may differ). For N:M the
// choice is made per row when a group of M columns starts, keeping the N largest scores.
#pragma once
#include <functional>

#include "engine/compress/hessian_factor.h"
#include "engine/compress/layer_stats.h"
#include "engine/compress/sparsity.h"

namespace mcw {

// Joint quantisation hook: called for each kept weight when its column is fixed, with the
// OBS-updated value; returns the value to store (the rounding error is then compensated
// like the pruning error). Called concurrently from several threads for different rows.
using WeightQuantizer = std::function<float(int64_t row, int64_t col, float value)>;

struct SparseGptOptions {
  SparsityTarget target;
  double damp = 0.01;        // λ = damp · mean(diag H) added to H's diagonal
  int64_t block_size = 128;  // columns per lazy-update and mask-selection block
  WeightQuantizer quantize;  // optional: prune and quantise in one pass
  // The f32 factor of H⁻¹ is used when its residual is at most this, else it is made in
  // f64 (hessian_factor.h); 0: always f64.
  double factor_tolerance = 1e-3;
};

struct SparseGptReport {
  double damp = 0;  // the dampening that made H positive definite (raised from options.damp)
  HessianFactorReport factor;
};

// w: 2-D [rows = out, cols = in]; stats.xtx is the Hessian. Inputs that never fire
// (H_jj = 0) get H_jj = 1 and their weights are zeroed, as in the reference method.
// Dense result with `mask` (values on the quantiser's grid when `quantize` is set).
// Throws mcw::Error for a bad target, weight, statistics or options before any work, or
// when H + λI is not positive definite; Cancelled when `cancel` fires.
CompressedTensor sparsegpt_prune(const Tensor& w, const LayerStats& stats,
                                 const SparseGptOptions& options,
                                 const CancelToken* cancel = nullptr,
                                 SparseGptReport* report = nullptr);

// Symmetric round to nearest onto 2^bits levels {-2^(bits-1) .. 2^(bits-1)-1}·scale, one
// scale per row (group_size 0) or per group of group_size columns of a row, taken from the
// weight as given (max |w| / (2^(bits-1) - 1)). bits in [2, 8].
WeightQuantizer rtn_quantizer(const Tensor& w, int bits, int64_t group_size = 0);

}  // namespace mcw
