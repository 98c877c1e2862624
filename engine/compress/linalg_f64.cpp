#include "engine/compress/linalg_f64.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "engine/kernels/cpu_features.h"

namespace mcw {
namespace {

// y[i] += a0·x0[i] + a1·x1[i] + a2·x2[i] + a3·x3[i]: four updates per load and store of y.
// The same body is compiled for each SIMD level (GCC inlines it into the target-attributed
// wrappers and vectorises it there); without FMA contraction every level gives the same bits.
[[gnu::always_inline]] inline void axpy4_body(double* __restrict y, const double* a,
                                              const double* __restrict x0,
                                              const double* __restrict x1,
                                              const double* __restrict x2,
                                              const double* __restrict x3, int64_t n) {
  const double a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
  for (int64_t i = 0; i < n; ++i) y[i] += a0 * x0[i] + a1 * x1[i] + a2 * x2[i] + a3 * x3[i];
}
[[gnu::always_inline]] inline void axpy1_body(double* __restrict y, double a,
                                              const double* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

using Axpy4 = void (*)(double*, const double*, const double*, const double*, const double*,
                       const double*, int64_t);
using Axpy1 = void (*)(double*, double, const double*, int64_t);

void axpy4_generic(double* y, const double* a, const double* x0, const double* x1, const double* x2,
                   const double* x3, int64_t n) {
  axpy4_body(y, a, x0, x1, x2, x3, n);
}
void axpy1_generic(double* y, double a, const double* x, int64_t n) { axpy1_body(y, a, x, n); }
#if defined(__x86_64__)
__attribute__((target("avx2"))) void axpy4_avx2(double* y, const double* a, const double* x0,
                                                const double* x1, const double* x2,
                                                const double* x3, int64_t n) {
  axpy4_body(y, a, x0, x1, x2, x3, n);
}
__attribute__((target("avx2"))) void axpy1_avx2(double* y, double a, const double* x, int64_t n) {
  axpy1_body(y, a, x, n);
}
__attribute__((target("avx512f"))) void axpy4_avx512(double* y, const double* a, const double* x0,
                                                     const double* x1, const double* x2,
                                                     const double* x3, int64_t n) {
  axpy4_body(y, a, x0, x1, x2, x3, n);
}
__attribute__((target("avx512f"))) void axpy1_avx512(double* y, double a, const double* x,
                                                     int64_t n) {
  axpy1_body(y, a, x, n);
}
#endif

struct Kernels {
  Axpy4 axpy4;
  Axpy1 axpy1;
};

Kernels kernels() {
#if defined(__x86_64__)
  switch (cpu_features().level) {
    case SimdLevel::Avx512:
      return {axpy4_avx512, axpy1_avx512};
    case SimdLevel::Avx2:
      return {axpy4_avx2, axpy1_avx2};
    case SimdLevel::Generic:
      break;
  }
#endif
  return {axpy4_generic, axpy1_generic};
}

// y[0:len) += Σ_p coef[p]·x_p[0:len) over np rows x_p = x + p·ldx.
void axpy_rows(const Kernels& k, double* y, const double* coef, const double* x, int64_t ldx,
               int64_t np, int64_t len) {
  int64_t p = 0;
  for (; p + 4 <= np; p += 4)
    k.axpy4(y, coef + p, x + p * ldx, x + (p + 1) * ldx, x + (p + 2) * ldx, x + (p + 3) * ldx, len);
  for (; p < np; ++p) k.axpy1(y, coef[p], x + p * ldx, len);
}

constexpr int64_t kBlock = 64;   // panel width / row block
constexpr int64_t kChunk = 256;  // columns per task in the streaming updates

}  // namespace

bool cholesky_lower(double* a, int64_t n, const CancelToken* cancel) {
  const Kernels k = kernels();
  std::vector<double> pt;  // the panel transposed: pt[p·n + c] = L[c][k0 + p]
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
    if (cancel) cancel->throw_if_cancelled();
    const int64_t k1 = std::min(k0 + kBlock, n), nb = k1 - k0;
    // Diagonal block, already updated by the earlier panels.
    for (int64_t j = k0; j < k1; ++j) {
      double d = a[j * n + j];
      for (int64_t p = k0; p < j; ++p) d -= a[j * n + p] * a[j * n + p];
      if (!(d > 0.0) || !std::isfinite(d)) return false;
      const double ljj = std::sqrt(d);
      a[j * n + j] = ljj;
      for (int64_t i = j + 1; i < k1; ++i) {
        double s = a[i * n + j];
        for (int64_t p = k0; p < j; ++p) s -= a[i * n + p] * a[j * n + p];
        a[i * n + j] = s / ljj;
      }
    }
    // Panel below the diagonal block: each row is a small triangular solve.
    tbb::parallel_for(tbb::blocked_range<int64_t>(k1, n, 32),
                      [&](const tbb::blocked_range<int64_t>& rr) {
                        for (int64_t i = rr.begin(); i < rr.end(); ++i)
                          for (int64_t j = k0; j < k1; ++j) {
                            double s = a[i * n + j];
                            for (int64_t p = k0; p < j; ++p) s -= a[i * n + p] * a[j * n + p];
                            a[i * n + j] = s / a[j * n + j];
                          }
                      });
    if (k1 == n) break;
    // Trailing update A22 −= L21·L21ᵀ (lower triangle), the O(n³) part.
    pt.assign(size_t(nb * n), 0.0);
    for (int64_t c = k1; c < n; ++c)
      for (int64_t p = 0; p < nb; ++p) pt[size_t(p * n + c)] = a[c * n + k0 + p];
    tbb::parallel_for(tbb::blocked_range<int64_t>(k1, n, 8),
                      [&](const tbb::blocked_range<int64_t>& rr) {
                        double coef[kBlock];
                        for (int64_t i = rr.begin(); i < rr.end(); ++i) {
                          for (int64_t p = 0; p < nb; ++p) coef[p] = -a[i * n + k0 + p];
                          for (int64_t c0 = k1; c0 <= i; c0 += kChunk) {
                            const int64_t len = std::min(c0 + kChunk, i + 1) - c0;
                            axpy_rows(k, a + i * n + c0, coef, pt.data() + c0, n, nb, len);
                          }
                        }
                      });
  }
  for (int64_t i = 0; i < n; ++i) std::fill(a + i * n + i + 1, a + (i + 1) * n, 0.0);
  return true;
}

void invert_lower(double* l, int64_t n, const CancelToken* cancel) {
  const Kernels k = kernels();
  // Row block [i0, i1) of X = L⁻¹ is built in t (kBlock × n) while L's rows stay intact for
  // every task, then copied over them. Columns of X are independent, so tasks split columns.
  std::vector<double> t(size_t(kBlock * n));
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    if (cancel) cancel->throw_if_cancelled();
    const int64_t i1 = std::min(i0 + kBlock, n), m = i1 - i0;
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, (i1 + kChunk - 1) / kChunk, 1),
        [&](const tbb::blocked_range<int64_t>& cr) {
          std::vector<double> coef(size_t(std::max(i0, m)));
          for (int64_t chunk = cr.begin(); chunk < cr.end(); ++chunk) {
            const int64_t j0 = chunk * kChunk, j1 = std::min(j0 + kChunk, i1), len = j1 - j0;
            for (int64_t r = 0; r < m; ++r) std::fill_n(t.data() + r * n + j0, len, 0.0);
            // Finished rows p < i0 (X[p][j] = 0 for j > p, so rows p < j0 contribute nothing).
            for (int64_t p0 = j0; p0 < i0; p0 += 4) {
              const int64_t np = std::min<int64_t>(4, i0 - p0);
              for (int64_t r = 0; r < m; ++r) {
                double c4[4];
                for (int64_t q = 0; q < np; ++q) c4[q] = l[(i0 + r) * n + p0 + q];
                axpy_rows(k, t.data() + r * n + j0, c4, l + p0 * n + j0, n, np, len);
              }
            }
            // Rows of this block, in order, each from the finished ones above it.
            for (int64_t r = 0; r < m; ++r) {
              const int64_t i = i0 + r;
              double* tr = t.data() + r * n + j0;
              const int64_t pb = std::max(i0, j0);
              for (int64_t p = pb; p < i; ++p) coef[size_t(p - pb)] = l[i * n + p];
              if (i > pb)
                axpy_rows(k, tr, coef.data(), t.data() + (pb - i0) * n + j0, n, i - pb, len);
              const double inv = 1.0 / l[i * n + i];
              for (int64_t j = j0; j < j1; ++j)
                tr[j - j0] = j < i ? -tr[j - j0] * inv : (j == i ? inv : 0.0);
            }
          }
        });
    for (int64_t r = 0; r < m; ++r) std::copy_n(t.data() + r * n, i0 + r + 1, l + (i0 + r) * n);
  }
}

bool inverse_cholesky_upper(const double* h, int64_t n, std::vector<double>& u,
                            const CancelToken* cancel) {
  // Reversing the flat array reverses both indices: a[i][j] = h[n−1−i][n−1−j].
  u.assign(std::reverse_iterator(h + n * n), std::reverse_iterator(h));
  if (!cholesky_lower(u.data(), n, cancel)) return false;
  invert_lower(u.data(), n, cancel);
  std::reverse(u.begin(), u.end());
  return true;
}

}  // namespace mcw
