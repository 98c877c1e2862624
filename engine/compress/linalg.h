// Dense linear algebra for the compression methods: the Hessians of SparseGPT/GPTQ and the
// whitening of activation-aware low rank are often badly conditioned. Every routine comes
// in f64 and in f32 (one templated body): GPTQ's and SparseGPT's reference code factorise
// in f32, and hessian_factor.h does so too, checking the result and falling back to f64
// when it is not accurate enough. Row-major storage throughout.
// The O(n³) routines are blocked so that almost all work is gemm_sub over tiles, spread
// over threads with oneTBB; gemm_sub has AVX2+FMA and AVX-512 builds chosen at run time.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/core/progress.h"

namespace mcw {

// C[m,n] -= A[m,k] · B[k,n] (leading dimensions lda, ldb, ldc). Runs on the calling thread.
void gemm_sub(const double* A, int64_t lda, const double* B, int64_t ldb, double* C, int64_t ldc,
              int64_t m, int64_t n, int64_t k);
void gemm_sub(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
              int64_t m, int64_t n, int64_t k);

// In place: the lower Cholesky factor L (A = L·Lᵀ) of the symmetric matrix A [n,n], of
// which only the lower triangle is read; the upper triangle is zeroed. Returns false when
// A is not numerically positive definite (a pivot <= 0 or not finite).
bool cholesky_lower(double* A, int64_t n, const CancelToken* cancel = nullptr);
bool cholesky_lower(float* A, int64_t n, const CancelToken* cancel = nullptr);

// In place inverse of a lower-triangular L [n,n] with non-zero diagonal.
void invert_lower(double* L, int64_t n, const CancelToken* cancel = nullptr);
void invert_lower(float* L, int64_t n, const CancelToken* cancel = nullptr);

// U upper triangular with H⁻¹ = Uᵀ·U, the factor SparseGPT and GPTQ sweep with: row j of U
// divided by U[j][j] is row j of the inverse of H restricted to columns j..n-1, divided by
// its diagonal. Computed without forming H⁻¹: with J the reversal permutation, J·H·J = L·Lᵀ
// gives H = R·Rᵀ for R = J·L·J upper, so U = R⁻¹ = J·L⁻¹·J. False when H is not
// positive definite.
bool inverse_cholesky_upper(const double* H, int64_t n, std::vector<double>& U,
                            const CancelToken* cancel = nullptr);
// A[i][j] <- A[perm[i]][perm[j]] for A [n,n], in place (one row of scratch): rows move
// along the permutation's cycles, then each row's entries.
void permute_symmetric(double* A, int64_t n, const std::vector<int64_t>& perm);

// The same in place: H [n,n] becomes U (no second n² buffer: a 14336-wide Hessian is 1.6 GB
// of f64). On false, H is left overwritten.
bool inverse_cholesky_upper_in_place(double* H, int64_t n, const CancelToken* cancel = nullptr);
bool inverse_cholesky_upper_in_place(float* H, int64_t n, const CancelToken* cancel = nullptr);

}  // namespace mcw
