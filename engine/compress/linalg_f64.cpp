#include "engine/compress/linalg_f64.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/kernels/cpu_features.h"

namespace mcw {
namespace {

constexpr int64_t kBlock = 128;  // panel width of the blocked factorisations
constexpr int64_t kTile = 64;    // rows or columns per parallel task

void check(const CancelToken* cancel) {
  if (cancel) cancel->throw_if_cancelled();
}

// 4×8 register tile: the accumulators stay in registers over the whole depth, so each
// step loads one row of B (8 values) and four values of A for 32 multiply-adds. GCC
// vector types keep it portable: 4-double vectors become AVX registers where this body is
// compiled for AVX2 and pairs of SSE2 registers elsewhere.
typedef double v4d __attribute__((vector_size(32)));

__attribute__((always_inline)) inline void tile_vec(const double* A, int64_t lda, const double* B,
                                                    int64_t ldb, double* C, int64_t ldc,
                                                    int64_t k) {
  v4d acc[4][2] = {};
  for (int64_t p = 0; p < k; ++p) {
    v4d b0, b1;
    std::memcpy(&b0, B + p * ldb, sizeof b0);
    std::memcpy(&b1, B + p * ldb + 4, sizeof b1);
    for (int r = 0; r < 4; ++r) {
      const double a = A[r * lda + p];
      const v4d av = {a, a, a, a};
      acc[r][0] += av * b0;
      acc[r][1] += av * b1;
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int h = 0; h < 2; ++h)
      for (int c = 0; c < 4; ++c) C[r * ldc + h * 4 + c] -= acc[r][h][c];
}

// The same tile in scalar code for the portable build, where 4-double vectors would be
// emulated badly.
__attribute__((always_inline)) inline void tile_scalar(const double* A, int64_t lda,
                                                       const double* B, int64_t ldb, double* C,
                                                       int64_t ldc, int64_t k) {
  double acc[4][8] = {};
  for (int64_t p = 0; p < k; ++p) {
    const double* b = B + p * ldb;
    for (int r = 0; r < 4; ++r) {
      const double a = A[r * lda + p];
      for (int c = 0; c < 8; ++c) acc[r][c] += a * b[c];
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 8; ++c) C[r * ldc + c] -= acc[r][c];
}

__attribute__((always_inline)) inline void edge(const double* A, int64_t lda, const double* B,
                                                int64_t ldb, double* C, int64_t ldc, int64_t m,
                                                int64_t n, int64_t k) {
  for (int64_t r = 0; r < m; ++r)
    for (int64_t p = 0; p < k; ++p) {
      const double a = A[r * lda + p];
      for (int64_t c = 0; c < n; ++c) C[r * ldc + c] -= a * B[p * ldb + c];
    }
}

// Depth is cut into chunks so that the 8-column strip of B a tile walks stays in L1.
template <bool Vec>
__attribute__((always_inline)) inline void gemm_body(const double* A, int64_t lda, const double* B,
                                                     int64_t ldb, double* C, int64_t ldc, int64_t m,
                                                     int64_t n, int64_t k) {
  constexpr int64_t kDepth = 256;
  for (int64_t p0 = 0; p0 < k; p0 += kDepth) {
    const int64_t kc = std::min(kDepth, k - p0);
    const double* Ap = A + p0;
    const double* Bp = B + p0 * ldb;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
      int64_t j = 0;
      for (; j + 8 <= n; j += 8) {
        if constexpr (Vec)
          tile_vec(Ap + i * lda, lda, Bp + j, ldb, C + i * ldc + j, ldc, kc);
        else
          tile_scalar(Ap + i * lda, lda, Bp + j, ldb, C + i * ldc + j, ldc, kc);
      }
      if (j < n) edge(Ap + i * lda, lda, Bp + j, ldb, C + i * ldc + j, ldc, 4, n - j, kc);
    }
    if (i < m) edge(Ap + i * lda, lda, Bp, ldb, C + i * ldc, ldc, m - i, n, kc);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void gemm_avx2(const double* A, int64_t lda, const double* B,
                                                   int64_t ldb, double* C, int64_t ldc, int64_t m,
                                                   int64_t n, int64_t k) {
  gemm_body<true>(A, lda, B, ldb, C, ldc, m, n, k);
}
#endif

void gemm_generic(const double* A, int64_t lda, const double* B, int64_t ldb, double* C,
                  int64_t ldc, int64_t m, int64_t n, int64_t k) {
  gemm_body<false>(A, lda, B, ldb, C, ldc, m, n, k);
}

// Unblocked lower Cholesky of the b×b diagonal block at D (leading dimension ld).
bool cholesky_small(double* D, int64_t ld, int64_t b) {
  for (int64_t j = 0; j < b; ++j) {
    double d = D[j * ld + j];
    for (int64_t p = 0; p < j; ++p) d -= D[j * ld + p] * D[j * ld + p];
    if (!(d > 0) || !std::isfinite(d)) return false;
    const double ljj = std::sqrt(d);
    D[j * ld + j] = ljj;
    for (int64_t i = j + 1; i < b; ++i) {
      double v = D[i * ld + j];
      for (int64_t p = 0; p < j; ++p) v -= D[i * ld + p] * D[j * ld + p];
      D[i * ld + j] = v / ljj;
    }
  }
  return true;
}

}  // namespace

void gemm_sub_f64(const double* A, int64_t lda, const double* B, int64_t ldb, double* C,
                  int64_t ldc, int64_t m, int64_t n, int64_t k) {
  if (m <= 0 || n <= 0 || k <= 0) return;
#if defined(__x86_64__)
  if (cpu_features().level >= SimdLevel::Avx2) return gemm_avx2(A, lda, B, ldb, C, ldc, m, n, k);
#endif
  gemm_generic(A, lda, B, ldb, C, ldc, m, n, k);
}

bool cholesky_lower(double* A, int64_t n, const CancelToken* cancel) {
  std::vector<double> panel_t;  // the panel transposed: [b, rows below the block]
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
    check(cancel);
    const int64_t k1 = std::min(n, k0 + kBlock), b = k1 - k0, below = n - k1;
    if (!cholesky_small(A + k0 * n + k0, n, b)) return false;
    if (below == 0) break;
    // Panel: rows under the block solve x·L11ᵀ = a, each row on its own.
    tbb::parallel_for(tbb::blocked_range<int64_t>(k1, n, kTile), [&](const auto& rr) {
      for (int64_t i = rr.begin(); i < rr.end(); ++i) {
        double* x = A + i * n + k0;
        for (int64_t j = 0; j < b; ++j) {
          double v = x[j];
          const double* lj = A + (k0 + j) * n + k0;
          for (int64_t p = 0; p < j; ++p) v -= x[p] * lj[p];
          x[j] = v / lj[j];
        }
      }
    });
    panel_t.assign(size_t(b * below), 0.0);
    for (int64_t i = 0; i < below; ++i)
      for (int64_t p = 0; p < b; ++p) panel_t[size_t(p * below + i)] = A[(k1 + i) * n + k0 + p];
    // Trailing lower triangle: A22 -= P·Pᵀ. Each row tile also updates a few entries above
    // the diagonal of its own diagonal tile; those are never read and are zeroed at the end.
    tbb::parallel_for(tbb::blocked_range<int64_t>(k1, n, kTile / 2), [&](const auto& rr) {
      const int64_t i0 = rr.begin(), i1 = rr.end();
      gemm_sub_f64(A + i0 * n + k0, n, panel_t.data(), below, A + i0 * n + k1, n, i1 - i0, i1 - k1,
                   b);
    });
  }
  for (int64_t i = 0; i < n; ++i) std::fill(A + i * n + i + 1, A + (i + 1) * n, 0.0);
  return true;
}

void invert_lower(double* L, int64_t n, const CancelToken* cancel) {
  // Block row b of X = L⁻¹: X_bb = L_bb⁻¹ and X[b, 0:i0] = -X_bb·L[b, 0:i0]·X[0:i0, 0:i0],
  // where the rows above are already X. Both products run as gemm_sub_f64 on zeroed outputs:
  // t = 0 - L·X, then X[b, 0:i0] = 0 - (-X_bb)·t.
  std::vector<double> t, dinv, neg_dinv;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    check(cancel);
    const int64_t i1 = std::min(n, i0 + kBlock), b = i1 - i0;
    dinv.assign(size_t(b * b), 0.0);
    for (int64_t j = 0; j < b; ++j) {
      dinv[size_t(j * b + j)] = 1.0 / L[(i0 + j) * n + i0 + j];
      for (int64_t i = j + 1; i < b; ++i) {
        double v = 0;
        for (int64_t p = j; p < i; ++p) v += L[(i0 + i) * n + i0 + p] * dinv[size_t(p * b + j)];
        dinv[size_t(i * b + j)] = -v / L[(i0 + i) * n + i0 + i];
      }
    }
    if (i0 > 0) {
      t.assign(size_t(b * i0), 0.0);
      neg_dinv.resize(dinv.size());
      for (size_t i = 0; i < dinv.size(); ++i) neg_dinv[i] = -dinv[i];
      // X is lower triangular, so output column tile j0 only needs depth >= j0.
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, i0, kTile), [&](const auto& cr) {
        const int64_t j0 = cr.begin(), j1 = cr.end();
        gemm_sub_f64(L + i0 * n + j0, n, L + j0 * n + j0, n, t.data() + j0, i0, b, j1 - j0,
                     i0 - j0);
      });
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, i0, kTile), [&](const auto& cr) {
        const int64_t j0 = cr.begin(), j1 = cr.end();
        for (int64_t r = 0; r < b; ++r)
          std::fill(L + (i0 + r) * n + j0, L + (i0 + r) * n + j1, 0.0);
        gemm_sub_f64(neg_dinv.data(), b, t.data() + j0, i0, L + i0 * n + j0, n, b, j1 - j0, b);
      });
    }
    for (int64_t r = 0; r < b; ++r)
      for (int64_t c = 0; c < b; ++c) L[(i0 + r) * n + i0 + c] = dinv[size_t(r * b + c)];
  }
}

void permute_symmetric(double* A, int64_t n, const std::vector<int64_t>& perm) {
  std::vector<double> row(static_cast<size_t>(n));
  std::vector<bool> placed(static_cast<size_t>(n), false);
  const size_t bytes = size_t(n) * sizeof(double);
  for (int64_t start = 0; start < n; ++start) {
    if (placed[size_t(start)]) continue;
    std::memcpy(row.data(), A + start * n, bytes);  // row `start` is overwritten first
    int64_t i = start;
    for (int64_t j = perm[size_t(i)]; j != start; i = j, j = perm[size_t(i)]) {
      std::memcpy(A + i * n, A + j * n, bytes);
      placed[size_t(i)] = true;
    }
    std::memcpy(A + i * n, row.data(), bytes);
    placed[size_t(i)] = true;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 64), [&](const auto& rr) {
    std::vector<double> tmp(static_cast<size_t>(n));
    for (int64_t i = rr.begin(); i < rr.end(); ++i) {
      double* a = A + i * n;
      for (int64_t j = 0; j < n; ++j) tmp[size_t(j)] = a[perm[size_t(j)]];
      std::memcpy(a, tmp.data(), bytes);
    }
  });
}

bool inverse_cholesky_upper_in_place(double* H, int64_t n, const CancelToken* cancel) {
  // J·X·J reverses both indices: entry (i, j) <-> (n-1-i, n-1-j), i.e. flat k <-> n²-1-k.
  const auto reverse = [&] { std::reverse(H, H + n * n); };
  reverse();
  if (!cholesky_lower(H, n, cancel)) return false;
  invert_lower(H, n, cancel);
  reverse();
  return true;
}

bool inverse_cholesky_upper(const double* H, int64_t n, std::vector<double>& U,
                            const CancelToken* cancel) {
  U.assign(H, H + n * n);
  return inverse_cholesky_upper_in_place(U.data(), n, cancel);
}

}  // namespace mcw
