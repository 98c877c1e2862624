// Low-rank compression of a linear layer: W [rows, cols] ≈ A·B with A [rows, r] and
// B [r, cols] from a truncated SVD (the best rank-r approximation in Frobenius norm,
// Eckart-Young). Factors are balanced: A = U_r·Σ_r^½, B = Σ_r^½·V_rᵀ, so both have the
// same scale, which keeps them well inside f16 range (the storage CompressedTensor counts).
//
// Activation-aware (in the manner of SVD-LLM): what matters is the layer's output W·Xᵀ,
// and ‖(W - Ŵ)·Xᵀ‖_F = ‖(W - Ŵ)·S‖_F for S the lower Cholesky factor of XᵀX (+ λI).
// Truncating the SVD of W·S = U·Σ·Vᵀ and un-whitening, Ŵ = (U_r·Σ_r^½)·(Σ_r^½·V_rᵀ·S⁻¹), is
// then the best rank-r choice for that output error.
//
// SVD: exact one-sided Jacobi (engine/compress/svd.h) when min(rows, cols) <= exact_max_dim,
// otherwise randomized subspace iteration to rank r + oversample with a few power
// iterations. An energy target is measured against the exact Σσ² = ‖W‖_F² (or ‖W·S‖_F²);
// on the randomized path the rank is searched by doubling a trial rank from 64, and never
// goes beyond the break-even rank rows·cols/(rows+cols), where the factors would be as
// large as the matrix (the energy target may then be missed: check the result's rank).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/compress/layer_stats.h"
#include "engine/core/progress.h"

namespace mcw {

struct LowRankOptions {
  int64_t rank = 0;   // > 0: keep this many singular values (<= min(rows, cols))
  double energy = 0;  // when rank == 0: smallest r with Σ_{i<=r} σ_i² >= energy·Σσ²
  bool activation_aware = false;  // whiten with the layer's XᵀX (stats required)
  double damp = 0.01;  // λ = damp · mean(diag XᵀX) added before the Cholesky of XᵀX
  int64_t exact_max_dim = 512;
  int power_iterations = 3;
  int64_t oversample = 16;
  uint64_t seed = 1;
};

// w: 2-D [rows = out, cols = in]. Returns coding LowRank (rank, lr_a, lr_b). Throws
// mcw::Error for bad options, weight or statistics before any work; Cancelled on cancel.
CompressedTensor low_rank(const Tensor& w, const LowRankOptions& options,
                          const LayerStats* stats = nullptr, const CancelToken* cancel = nullptr);

// Smallest r >= 1 with Σ_{i<r} s_i² >= energy·total_sq (s descending); 0 when even all of
// s falls short.
int64_t energy_rank(const std::vector<double>& s, double energy, double total_sq);

}  // namespace mcw
