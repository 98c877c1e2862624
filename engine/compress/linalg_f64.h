// Dense f64 factorisations for the Hessian-based compressors (GPTQ; usable by SparseGPT):
// row-major n×n matrices, blocked, parallel with oneTBB, inner loops vectorised for the
// SIMD level cpu_features() reports. f64 because H = XᵀX of a large layer is badly
// conditioned and the factors feed thousands of dependent updates.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/core/progress.h"

namespace mcw {

// In place: the lower triangle of the symmetric positive definite `a` becomes L with
// a = L·Lᵀ; the strict upper triangle is zeroed. Only the lower triangle is read.
// Returns false (a then holds garbage) when a pivot is not positive.
bool cholesky_lower(double* a, int64_t n, const CancelToken* cancel = nullptr);

// In place inverse of a lower-triangular matrix with a nonzero diagonal (upper triangle
// must be zero and stays zero).
void invert_lower(double* l, int64_t n, const CancelToken* cancel = nullptr);

// The upper-triangular U with Uᵀ·U = H⁻¹ (what GPTQ calls the Cholesky of the inverse
// Hessian), from the symmetric positive definite H, in two O(n³/3) steps instead of the
// usual three: with J the index reversal, J·H·J = L·Lᵀ gives H = R·Rᵀ, R = J·L·J upper,
// so H⁻¹ = (R⁻¹)ᵀ·R⁻¹ and U = R⁻¹ = J·L⁻¹·J. Returns false when H is not positive definite.
bool inverse_cholesky_upper(const double* h, int64_t n, std::vector<double>& u,
                            const CancelToken* cancel = nullptr);

}  // namespace mcw
