// AVX2+FMA path of the f32 GEMM. Every function that uses AVX2 carries the target
// attribute, so this file builds with the portable baseline flags and only runs when
// cpu_features() reports AVX2 (the driver in gemm.cpp decides).
#include "engine/kernels/gemm_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"

namespace mcw::gemm_detail {
namespace {

// 6 rows × 16 columns: 12 accumulators, 2 B vectors and a broadcast in 16 registers.
constexpr int kMr = 6, kNv = 2, kNr = 8 * kNv;

// Lane mask for maskload/maskstore with the first `remaining` lanes on.
MCW_AVX2_INLINE __m256i tail_mask(int64_t remaining) {
  alignas(64) static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                          0,  0,  0,  0,  0,  0,  0,  0};
  const int64_t r = remaining < 0 ? 0 : remaining > 8 ? 8 : remaining;
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ones_then_zeros + 8 - r));
}

template <int MR, int NV>
MCW_AVX2_INLINE void micro_tile(const float* a, const float* b, int64_t kc, float* C,
                                  int64_t ldc, int64_t mrem, int64_t nrem, bool load_c,
                                  const float* bias) {
  constexpr int NR = 8 * NV;
  // C rows are far apart (often a multiple of 4 KiB): fetch them while the FMAs run.
  for (int i = 0; i < MR; ++i)
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
  __m256 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    __m256 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + p * NR + 8 * v);
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_set1_ps(a[p * MR + i]);
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  __m256i mask[NV];
  __m256 bias_v[NV];
  for (int v = 0; v < NV; ++v) {
    mask[v] = tail_mask(nrem - 8 * v);
    bias_v[v] = bias ? _mm256_maskload_ps(bias + 8 * v, mask[v]) : _mm256_setzero_ps();
  }
  for (int i = 0; i < MR; ++i) {
    if (i >= mrem) break;
    float* c = C + i * ldc;
    for (int v = 0; v < NV; ++v) {
      __m256 r = _mm256_add_ps(acc[i][v], bias_v[v]);
      if (load_c) r = _mm256_add_ps(r, _mm256_maskload_ps(c + 8 * v, mask[v]));
      _mm256_maskstore_ps(c + 8 * v, mask[v], r);
    }
  }
}

MCW_AVX2 void avx2_block(const float* Ap, const float* Bp, float* C, int64_t ldc,
                             int64_t mc, int64_t nc, int64_t kc, bool load_c,
                             const float* bias) {
  for (int64_t j0 = 0; j0 < nc; j0 += kNr) {
    const float* b = Bp + j0 * kc;
    const float* bias_j = bias ? bias + j0 : nullptr;
    for (int64_t i0 = 0; i0 < mc; i0 += kMr) {
      micro_tile<kMr, kNv>(Ap + i0 * kc, b, kc, C + i0 * ldc + j0, ldc, mc - i0, nc - j0,
                           load_c, bias_j);
    }
  }
}

// Tail: a partial vector at p, lanes chosen by m (masked loads are slower, so only there).
template <int RM, int RW, bool Tail>
MCW_AVX2_INLINE void dot_step(const float* X, int64_t ldx, const float* W, int64_t ldw,
                              int64_t p, __m256i m, __m256 (&acc)[RM][RW]) {
  __m256 w[RW];
  for (int r = 0; r < RW; ++r)
    w[r] = Tail ? _mm256_maskload_ps(W + r * ldw + p, m) : _mm256_loadu_ps(W + r * ldw + p);
  for (int i = 0; i < RM; ++i) {
    const __m256 x =
        Tail ? _mm256_maskload_ps(X + i * ldx + p, m) : _mm256_loadu_ps(X + i * ldx + p);
    for (int r = 0; r < RW; ++r) acc[i][r] = _mm256_fmadd_ps(x, w[r], acc[i][r]);
  }
}

// RM rows of X against RW rows of W, all of k: RM·RW accumulators, reduced at the end.
template <int RM, int RW>
MCW_AVX2_INLINE void dot_tile(const float* X, int64_t ldx, const float* W, int64_t ldw,
                                float* Y, int64_t ldy, int64_t k, const float* bias,
                                bool accumulate) {
  __m256 acc[RM][RW];
  for (int i = 0; i < RM; ++i)
    for (int r = 0; r < RW; ++r) acc[i][r] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) dot_step<RM, RW, false>(X, ldx, W, ldw, p, __m256i{}, acc);
  if (p < k) dot_step<RM, RW, true>(X, ldx, W, ldw, p, tail_mask(k - p), acc);
  for (int i = 0; i < RM; ++i) {
    for (int r = 0; r < RW; ++r) {
      float v = hsum(acc[i][r]);
      if (bias) v += bias[r];
      float& y = Y[i * ldy + r];
      y = accumulate ? y + v : v;
    }
  }
}

// One group of up to 4 X rows against W rows [n0, n1).
template <int RM>
MCW_AVX2_INLINE void dot_group(const float* X, int64_t ldx, const float* W, int64_t ldw,
                                 float* Y, int64_t ldy, int64_t n0, int64_t n1, int64_t k,
                                 const float* bias, bool accumulate) {
  constexpr int RW = RM == 1 ? 8 : 4;  // at least 8 accumulators to hide FMA latency
  int64_t j = n0;
  for (; j + RW <= n1; j += RW)
    dot_tile<RM, RW>(X, ldx, W + j * ldw, ldw, Y + j, ldy, k, bias ? bias + j : nullptr,
                     accumulate);
  for (; j < n1; ++j)
    dot_tile<RM, 1>(X, ldx, W + j * ldw, ldw, Y + j, ldy, k, bias ? bias + j : nullptr,
                    accumulate);
}

MCW_AVX2 void avx2_rows_dot(const float* X, int64_t ldx, const float* W, int64_t ldw,
                                float* Y, int64_t ldy, int64_t m, int64_t n0, int64_t n1,
                                int64_t k, const float* bias, bool accumulate) {
  // W rows in chunks that stay in L2 while every group of X rows passes over them.
  constexpr int64_t kChunkBytes = 256 * 1024;
  const int64_t chunk = k > 0 ? (kChunkBytes / 4 / k > 8 ? kChunkBytes / 4 / k : 8) : n1 - n0;
  for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
    const int64_t c1 = c0 + chunk < n1 ? c0 + chunk : n1;
    for (int64_t i = 0; i < m; i += 4) {
      const float* x = X + i * ldx;
      float* y = Y + i * ldy;
      switch (m - i < 4 ? m - i : 4) {
        case 1: dot_group<1>(x, ldx, W, ldw, y, ldy, c0, c1, k, bias, accumulate); break;
        case 2: dot_group<2>(x, ldx, W, ldw, y, ldy, c0, c1, k, bias, accumulate); break;
        case 3: dot_group<3>(x, ldx, W, ldw, y, ldy, c0, c1, k, bias, accumulate); break;
        default: dot_group<4>(x, ldx, W, ldw, y, ldy, c0, c1, k, bias, accumulate); break;
      }
    }
  }
}

}  // namespace

const GemmIsa& gemm_isa_avx2() {
  static const GemmIsa isa{"avx2", kMr, kNr, 256, 8 * kMr, 256, avx2_block, nullptr,
                           avx2_rows_dot};
  return isa;
}

}  // namespace mcw::gemm_detail

#else  // not x86-64: the driver never selects this path, but keep the symbol.

namespace mcw::gemm_detail {
const GemmIsa& gemm_isa_avx2() { return gemm_isa_generic(); }
}  // namespace mcw::gemm_detail

#endif
