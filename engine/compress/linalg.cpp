#include "engine/compress/linalg.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/kernels/cpu_features.h"

namespace mcw {
namespace {

constexpr int64_t kBlock = 128;  // panel width of the blocked factorisations
constexpr int64_t kTile = 64;    // rows or columns per parallel task (the inverse: 4 tiles)

void check(const CancelToken *cancel) {
  if (cancel) cancel->throw_if_cancelled();
}

// The kernel of every factorisation: C -= A·B on one thread. B is copied strip
// by strip (NR columns × kDepth rows) into a contiguous buffer first: the
// callers' B rows are up to n doubles apart (114 KB for a 14336-wide Hessian),
// so walking a strip in place touches a new page per row and the TLB, not the
// FMA units, set the pace. Register tiles of MR rows × NR = 2 vectors stay in
// registers over the strip's depth; each step loads two B vectors and MR
// broadcasts of A for 2·MR vector multiply-adds. GCC vector types give the AVX2
// (4 doubles) and AVX-512 (8 doubles) tiles from one body; the portable build
// uses plain arrays, which its compiler vectorises as it can.
// One body serves f64 and f32 (T); an f32 vector holds twice the lanes, so its tiles
// are twice as wide and the strip keeps the same bytes.
typedef double v4d __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
constexpr int64_t kDepth = 128;  // rows of a packed B strip: 16 KB at 16 doubles, in L1

template <typename T, typename V, int MR>
__attribute__((always_inline)) inline void tile_vec(const T *A, const T *B, T *C, int64_t ldc,
                                                    int64_t k) {
  constexpr int L = int(sizeof(V) / sizeof(T)), NR = 2 * L;
  V acc[MR][2] = {};
  for (int64_t p = 0; p < k; ++p) {
    V b0, b1;
    std::memcpy(&b0, B + p * NR, sizeof b0);
    std::memcpy(&b1, B + p * NR + L, sizeof b1);
    for (int r = 0; r < MR; ++r) {
      const T a = A[p * MR + r];  // a scalar operand is broadcast
      acc[r][0] += a * b0;
      acc[r][1] += a * b1;
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int h = 0; h < 2; ++h) {
      V c;
      std::memcpy(&c, C + r * ldc + h * L, sizeof c);
      c -= acc[r][h];
      std::memcpy(C + r * ldc + h * L, &c, sizeof c);
    }
}

template <typename T, int MR, int NR>
__attribute__((always_inline)) inline void tile_scalar(const T *A, const T *B, T *C, int64_t ldc,
                                                       int64_t k) {
  T acc[MR][NR] = {};
  for (int64_t p = 0; p < k; ++p)
    for (int r = 0; r < MR; ++r) {
      const T a = A[p * MR + r];
      for (int c = 0; c < NR; ++c) acc[r][c] += a * B[p * NR + c];
    }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) C[r * ldc + c] -= acc[r][c];
}

// Tile(a, strip, C, ldc, depth) updates an MR × NR block of C from packed operands: a holds
// MR rows of A interleaved (the MR values of step p side by side, so the broadcasts read
// consecutive addresses; rows past m are zeros), the strip NR columns of B (columns past n
// are zeros). A is packed once per depth block for all strips, B once per strip for all
// rows. Blocks at the right or bottom edge run the same tile into a small buffer, so ragged
// sizes cost no more than a tile.
template <typename T, int MR, int NR, typename Tile>
__attribute__((always_inline)) inline void gemm_body(const T *A, int64_t lda, const T *B,
                                                     int64_t ldb, T *C, int64_t ldc, int64_t m,
                                                     int64_t n, int64_t k, Tile tile) {
  const int64_t blocks = (m + MR - 1) / MR;
  std::vector<T> packed_a(size_t(blocks * MR * kDepth));
  alignas(64) T strip[kDepth * NR];
  for (int64_t p0 = 0; p0 < k; p0 += kDepth) {
    const int64_t kc = std::min(kDepth, k - p0);
    for (int64_t i = 0; i < blocks * MR; ++i) {
      T *dst = packed_a.data() + (i / MR) * MR * kDepth + i % MR;
      const T *src = A + i * lda + p0;
      for (int64_t p = 0; p < kc; ++p) dst[p * MR] = i < m ? src[p] : T(0);
    }
    for (int64_t j = 0; j < n; j += NR) {
      const int64_t nr = std::min<int64_t>(NR, n - j);
      for (int64_t p = 0; p < kc; ++p) {
        std::memcpy(strip + p * NR, B + (p0 + p) * ldb + j, size_t(nr) * sizeof(T));
        std::fill(strip + p * NR + nr, strip + (p + 1) * NR, T(0));
      }
      for (int64_t bi = 0; bi < blocks; ++bi) {
        const int64_t i = bi * MR, mr = std::min<int64_t>(MR, m - i);
        const T *a = packed_a.data() + bi * MR * kDepth;
        if (mr == MR && nr == NR) {
          tile(a, strip, C + i * ldc + j, ldc, kc);
          continue;
        }
        alignas(64) T c[MR * NR] = {};
        tile(a, strip, c, NR, kc);  // c = −a·strip
        for (int64_t r = 0; r < mr; ++r)
          for (int64_t q = 0; q < nr; ++q) C[(i + r) * ldc + j + q] += c[r * NR + q];
      }
    }
  }
}

#define MCW_GEMM_ARGS(T)                                                                    \
  const T *A, int64_t lda, const T *B, int64_t ldb, T *C, int64_t ldc, int64_t m, int64_t n, \
      int64_t k
#define MCW_GEMM_PASS A, lda, B, ldb, C, ldc, m, n, k

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void gemm_avx2(MCW_GEMM_ARGS(double)) {
  gemm_body<double, 4, 8>(MCW_GEMM_PASS, tile_vec<double, v4d, 4>);
}
__attribute__((target("avx512f,fma"))) void gemm_avx512(MCW_GEMM_ARGS(double)) {
  gemm_body<double, 8, 16>(MCW_GEMM_PASS, tile_vec<double, v8d, 8>);
}
__attribute__((target("avx2,fma"))) void gemm_avx2(MCW_GEMM_ARGS(float)) {
  gemm_body<float, 4, 16>(MCW_GEMM_PASS, tile_vec<float, v8f, 4>);
}
__attribute__((target("avx512f,fma"))) void gemm_avx512(MCW_GEMM_ARGS(float)) {
  gemm_body<float, 8, 32>(MCW_GEMM_PASS, tile_vec<float, v16f, 8>);
}
#endif

template <typename T>
void gemm_generic(MCW_GEMM_ARGS(T)) {
  gemm_body<T, 4, 8>(MCW_GEMM_PASS, tile_scalar<T, 4, 8>);
}

template <typename T>
void gemm_dispatch(MCW_GEMM_ARGS(T)) {
  if (m <= 0 || n <= 0 || k <= 0) return;
#if defined(__x86_64__)
  if (cpu_features().level >= SimdLevel::Avx512) return gemm_avx512(MCW_GEMM_PASS);
  if (cpu_features().level >= SimdLevel::Avx2) return gemm_avx2(MCW_GEMM_PASS);
#endif
  gemm_generic(MCW_GEMM_PASS);
}

// Unblocked lower Cholesky of the b×b diagonal block at D (leading dimension ld). The
// sums run in f64 whatever T is: they are O(b³) per block, a rounding error of each f32
// pivot is what the factorisation's accuracy rests on, and they cost nothing beside the
// trailing products.
template <typename T>
bool cholesky_small(T *D, int64_t ld, int64_t b) {
  for (int64_t j = 0; j < b; ++j) {
    double d = D[j * ld + j];
    for (int64_t p = 0; p < j; ++p) d -= double(D[j * ld + p]) * D[j * ld + p];
    if (!(d > 0) || !std::isfinite(d)) return false;
    const double ljj = std::sqrt(d);
    D[j * ld + j] = T(ljj);
    for (int64_t i = j + 1; i < b; ++i) {
      double v = D[i * ld + j];
      for (int64_t p = 0; p < j; ++p) v -= double(D[i * ld + p]) * D[j * ld + p];
      D[i * ld + j] = T(v / ljj);
    }
  }
  return true;
}

// out [b,b] (leading dimension b) = the inverse of the lower-triangular b×b block at L.
template <typename T>
void invert_small_lower(const T *L, int64_t ld, int64_t b, std::vector<T> &out) {
  out.assign(size_t(b * b), T(0));
  for (int64_t j = 0; j < b; ++j) {
    out[size_t(j * b + j)] = T(1.0 / double(L[j * ld + j]));
    for (int64_t i = j + 1; i < b; ++i) {
      double v = 0;
      for (int64_t p = j; p < i; ++p) v += double(L[i * ld + p]) * out[size_t(p * b + j)];
      out[size_t(i * b + j)] = T(-v / double(L[i * ld + i]));
    }
  }
}

template <typename T>
bool cholesky_lower_t(T *A, int64_t n, const CancelToken *cancel) {
  std::vector<T> panel_t;  // the panel transposed: [b, rows below the block]
  std::vector<T> inv(size_t(kBlock * kBlock)), neg_inv_t(size_t(kBlock * kBlock));
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
    check(cancel);
    const int64_t k1 = std::min(n, k0 + kBlock), b = k1 - k0, below = n - k1;
    if (!cholesky_small(A + k0 * n + k0, n, b)) return false;
    if (below == 0) break;
    // Panel: the rows under the block solve x·L11ᵀ = a, as one product with L11⁻¹
    // (substitution row by row is scalar and was most of the factorisation's time). Each
    // row tile also writes its part of the transposed panel the trailing update reads.
    invert_small_lower(A + k0 * n + k0, n, b, inv);
    for (int64_t p = 0; p < b; ++p)
      for (int64_t j = 0; j < b; ++j) neg_inv_t[size_t(p * b + j)] = -inv[size_t(j * b + p)];
    panel_t.resize(size_t(b * below));
    tbb::parallel_for(tbb::blocked_range<int64_t>(k1, n, kTile), [&](const auto &rr) {
      const int64_t i0 = rr.begin(), rows = rr.end() - i0;
      std::vector<T> a(size_t(rows * b));
      for (int64_t r = 0; r < rows; ++r) {
        T *x = A + (i0 + r) * n + k0;
        std::copy(x, x + b, a.begin() + r * b);
        std::fill(x, x + b, T(0));
      }
      gemm_dispatch(a.data(), b, neg_inv_t.data(), b, A + i0 * n + k0, n, rows, b, b);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t p = 0; p < b; ++p)
          panel_t[size_t(p * below + i0 - k1 + r)] = A[(i0 + r) * n + k0 + p];
    });
    // Trailing lower triangle: A22 -= P·Pᵀ. Each row tile also updates a few
    // entries above the diagonal of its own diagonal tile; those are never read
    // and are zeroed at the end.
    tbb::parallel_for(tbb::blocked_range<int64_t>(k1, n, 2 * kTile), [&](const auto &rr) {
      const int64_t i0 = rr.begin(), i1 = rr.end();
      gemm_dispatch(A + i0 * n + k0, n, panel_t.data(), below, A + i0 * n + k1, n, i1 - i0,
                    i1 - k1, b);
    });
  }
  tbb::parallel_for(int64_t(0), n,
                    [&](int64_t i) { std::fill(A + i * n + i + 1, A + (i + 1) * n, T(0)); });
  return true;
}

template <typename T>
void invert_lower_t(T *L, int64_t n, const CancelToken *cancel) {
  // Block row b of X = L⁻¹: X_bb = L_bb⁻¹ and X[b, 0:i0] = -X_bb·L[b,
  // 0:i0]·X[0:i0, 0:i0], where the rows above are already X. Both products run
  // as gemm_sub on zeroed outputs: t = 0 - L·X, then X[b, 0:i0] = 0 - (-X_bb)·t.
  std::vector<T> t, dinv, neg_dinv;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    check(cancel);
    const int64_t i1 = std::min(n, i0 + kBlock), b = i1 - i0;
    invert_small_lower(L + i0 * n + i0, n, b, dinv);
    if (i0 > 0) {
      t.assign(size_t(b * i0), T(0));
      neg_dinv.resize(dinv.size());
      for (size_t i = 0; i < dinv.size(); ++i) neg_dinv[i] = -dinv[i];
      // X is lower triangular, so output column tile j0 only needs depth >= j0.
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, i0, 4 * kTile), [&](const auto &cr) {
        const int64_t j0 = cr.begin(), j1 = cr.end();
        gemm_dispatch(L + i0 * n + j0, n, L + j0 * n + j0, n, t.data() + j0, i0, b, j1 - j0,
                      i0 - j0);
      });
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, i0, 4 * kTile), [&](const auto &cr) {
        const int64_t j0 = cr.begin(), j1 = cr.end();
        for (int64_t r = 0; r < b; ++r)
          std::fill(L + (i0 + r) * n + j0, L + (i0 + r) * n + j1, T(0));
        gemm_dispatch(neg_dinv.data(), b, t.data() + j0, i0, L + i0 * n + j0, n, b, j1 - j0, b);
      });
    }
    for (int64_t r = 0; r < b; ++r)
      for (int64_t c = 0; c < b; ++c) L[(i0 + r) * n + i0 + c] = dinv[size_t(r * b + c)];
  }
}

template <typename T>
bool inverse_cholesky_upper_t(T *H, int64_t n, const CancelToken *cancel) {
  // J·X·J reverses both indices: entry (i, j) <-> (n-1-i, n-1-j), i.e. flat k <-> n²-1-k.
  // Row i swaps with row n-1-i read backwards (in parallel: at 14336 wide this is 1.6 GB
  // of data movement, twice, which one thread did in seconds).
  const auto reverse = [&] {
    tbb::parallel_for(int64_t(0), (n + 1) / 2, [&](int64_t i) {
      T *a = H + i * n;
      T *b = H + (n - 1 - i) * n;
      if (a == b) return std::reverse(a, a + n);
      for (int64_t j = 0; j < n; ++j) std::swap(a[j], b[n - 1 - j]);
    });
  };
  reverse();
  if (!cholesky_lower_t(H, n, cancel)) return false;
  invert_lower_t(H, n, cancel);
  reverse();
  return true;
}

}  // namespace

void gemm_sub(const double *A, int64_t lda, const double *B, int64_t ldb, double *C, int64_t ldc,
              int64_t m, int64_t n, int64_t k) {
  gemm_dispatch(MCW_GEMM_PASS);
}
void gemm_sub(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
              int64_t m, int64_t n, int64_t k) {
  gemm_dispatch(MCW_GEMM_PASS);
}

bool cholesky_lower(double *A, int64_t n, const CancelToken *cancel) {
  return cholesky_lower_t(A, n, cancel);
}
bool cholesky_lower(float *A, int64_t n, const CancelToken *cancel) {
  return cholesky_lower_t(A, n, cancel);
}
void invert_lower(double *L, int64_t n, const CancelToken *cancel) { invert_lower_t(L, n, cancel); }
void invert_lower(float *L, int64_t n, const CancelToken *cancel) { invert_lower_t(L, n, cancel); }
bool inverse_cholesky_upper_in_place(double *H, int64_t n, const CancelToken *cancel) {
  return inverse_cholesky_upper_t(H, n, cancel);
}
bool inverse_cholesky_upper_in_place(float *H, int64_t n, const CancelToken *cancel) {
  return inverse_cholesky_upper_t(H, n, cancel);
}

void permute_symmetric(double *A, int64_t n, const std::vector<int64_t> &perm) {
  std::vector<double> row(static_cast<size_t>(n));
  std::vector<bool> placed(static_cast<size_t>(n), false);
  const size_t bytes = size_t(n) * sizeof(double);
  for (int64_t start = 0; start < n; ++start) {
    if (placed[size_t(start)]) continue;
    std::memcpy(row.data(), A + start * n,
                bytes);  // row `start` is overwritten first
    int64_t i = start;
    for (int64_t j = perm[size_t(i)]; j != start; i = j, j = perm[size_t(i)]) {
      std::memcpy(A + i * n, A + j * n, bytes);
      placed[size_t(i)] = true;
    }
    std::memcpy(A + i * n, row.data(), bytes);
    placed[size_t(i)] = true;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 64), [&](const auto &rr) {
    std::vector<double> tmp(static_cast<size_t>(n));
    for (int64_t i = rr.begin(); i < rr.end(); ++i) {
      double *a = A + i * n;
      for (int64_t j = 0; j < n; ++j) tmp[size_t(j)] = a[perm[size_t(j)]];
      std::memcpy(a, tmp.data(), bytes);
    }
  });
}

bool inverse_cholesky_upper(const double *H, int64_t n, std::vector<double> &U,
                            const CancelToken *cancel) {
  U.assign(H, H + n * n);
  return inverse_cholesky_upper_in_place(U.data(), n, cancel);
}

}  // namespace mcw
