// Singular value decompositions for low-rank compression, in f64.
//
// jacobi_svd: one-sided (Hestenes) Jacobi. Orthogonalises the columns of A by plane
// rotations, sweeping all column pairs in round-robin order (n/2 disjoint pairs at a time,
// rotated in parallel) until every pair is orthogonal to ~1e-13 relative. Accurate to
// working precision (small singular values to high relative accuracy too) but
// O(min(m,n)²·max(m,n)) per sweep, with 6-10 sweeps: meant for min(m, n) up to ~512.
//
// randomized_svd: Halko, Martinsson & Tropp's randomized range finder for big layers.
// A Gaussian test matrix Ω [n, l] gives Y = A·Ω; `power_iterations` rounds of
// Y = A·(Aᵀ·Y), re-orthonormalised each time, sharpen the decay of the spectrum; with Q an
// orthonormal basis of Y, Qᵀ·A (l × n) is decomposed exactly (QR of Aᵀ·Q, then Jacobi on
// the l × l factor). The products with A use the f32 GEMM (A is f32 weights anyway, ~1e-6
// relative); orthonormalisation (classical Gram-Schmidt, twice) and the rest are f64.
// The first l - oversampling singular triplets are close to the true ones.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/core/progress.h"

namespace mcw {

struct Svd {
  int64_t m = 0, n = 0, k = 0;  // A [m, n] ≈ U·diag(s)·Vt with k terms
  std::vector<double> u;        // [m, k], orthonormal columns (zero for s = 0)
  std::vector<double> s;        // [k], descending, >= 0
  std::vector<double> vt;       // [k, n], orthonormal rows
};

// Full thin SVD, k = min(m, n). a: [m, n] row-major.
Svd jacobi_svd(const double* a, int64_t m, int64_t n, const CancelToken* cancel = nullptr);

// Rank-l approximation, l <= min(m, n). a: [m, n] row-major f32.
Svd randomized_svd(const float* a, int64_t m, int64_t n, int64_t l, int power_iterations,
                   uint64_t seed, const CancelToken* cancel = nullptr);

}  // namespace mcw
