// AVX-512 path of the f32 GEMM. Every function that uses AVX-512 carries the target
// attribute, so this file builds with the portable baseline flags and only runs when
// cpu_features() reports AVX-512 (the driver in gemm.cpp decides).
#include "engine/kernels/gemm_isa.h"

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics (unpack, shuffle, extract, reduce) start from a deliberately
// undefined register, which -Wmaybe-uninitialized reports inside the compiler's own header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "engine/kernels/avx512_transpose.h"

#define MCW_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define MCW_AVX512_INLINE MCW_AVX512 inline __attribute__((always_inline))

namespace mcw::gemm_detail {
namespace {

// 12 rows × 32 columns: 24 accumulators, 2 B vectors, broadcasts folded into the FMAs.
// Per k step: 2 loads + 12 broadcasts feed 24 FMAs, well inside two load ports.
constexpr int kMr = 12, kNv = 2, kNr = 16 * kNv;

MCW_AVX512_INLINE __mmask16 tail_mask(int64_t remaining) {
  if (remaining >= 16) return 0xffff;
  if (remaining <= 0) return 0;
  return __mmask16((1u << remaining) - 1);
}

MCW_AVX512_INLINE float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

template <int MR, int NV>
MCW_AVX512_INLINE void micro_tile(const float* a, const float* b, int64_t kc, float* C,
                                  int64_t ldc, int64_t mrem, int64_t nrem, bool load_c,
                                  const float* bias) {
  constexpr int NR = 16 * NV;
  // C rows are far apart (often a multiple of 4 KiB): fetch them while the FMAs run.
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v)
      _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 16 * v), _MM_HINT_T0);
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + p * NR + 16 * v);
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[p * MR + i]);
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  __mmask16 mask[NV];
  __m512 bias_v[NV];
  for (int v = 0; v < NV; ++v) {
    mask[v] = tail_mask(nrem - 16 * v);
    bias_v[v] = bias ? _mm512_maskz_loadu_ps(mask[v], bias + 16 * v) : _mm512_setzero_ps();
  }
  for (int i = 0; i < MR; ++i) {
    if (i >= mrem) break;
    float* c = C + i * ldc;
    for (int v = 0; v < NV; ++v) {
      __m512 r = _mm512_add_ps(acc[i][v], bias_v[v]);
      if (load_c) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask[v], c + 16 * v));
      _mm512_mask_storeu_ps(c + 16 * v, mask[v], r);
    }
  }
}

MCW_AVX512 void avx512_block(const float* Ap, const float* Bp, float* C, int64_t ldc,
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

template <int RM, int RW>
MCW_AVX512_INLINE void dot_step(const float* X, int64_t ldx, const float* W, int64_t ldw,
                                int64_t p, __mmask16 m, __m512 (&acc)[RM][RW]) {
  __m512 w[RW];
  for (int r = 0; r < RW; ++r) w[r] = _mm512_maskz_loadu_ps(m, W + r * ldw + p);
  for (int i = 0; i < RM; ++i) {
    const __m512 x = _mm512_maskz_loadu_ps(m, X + i * ldx + p);
    for (int r = 0; r < RW; ++r) acc[i][r] = _mm512_fmadd_ps(x, w[r], acc[i][r]);
  }
}

// GemmIsa::pack_transposed, 16×16 blocks at a time through transpose16.
MCW_AVX512 void avx512_pack_transposed(const float* src, int64_t s_w, int64_t valid, int w,
                                       int64_t kc, float* dst) {
  for (int r0 = 0; r0 < w; r0 += 16) {
    const int64_t rows = valid - r0 < 0 ? 0 : valid - r0 > 16 ? 16 : valid - r0;
    const __mmask16 store = tail_mask(w - r0);
    for (int64_t p0 = 0; p0 < kc; p0 += 16) {
      const int64_t depth = kc - p0 < 16 ? kc - p0 : 16;
      const __mmask16 load = tail_mask(depth);
      __m512 v[16];
      for (int r = 0; r < 16; ++r)
        v[r] = r < rows ? _mm512_maskz_loadu_ps(load, src + (r0 + r) * s_w + p0)
                        : _mm512_setzero_ps();
      transpose16(v);
      for (int q = 0; q < depth; ++q) _mm512_mask_storeu_ps(dst + (p0 + q) * w + r0, store, v[q]);
    }
  }
}

// RM rows of X against RW rows of W, all of k: RM·RW accumulators, reduced at the end.
template <int RM, int RW>
MCW_AVX512_INLINE void dot_tile(const float* X, int64_t ldx, const float* W, int64_t ldw,
                                float* Y, int64_t ldy, int64_t k, const float* bias,
                                bool accumulate) {
  __m512 acc[RM][RW];
  for (int i = 0; i < RM; ++i)
    for (int r = 0; r < RW; ++r) acc[i][r] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) dot_step<RM, RW>(X, ldx, W, ldw, p, 0xffff, acc);
  if (p < k) dot_step<RM, RW>(X, ldx, W, ldw, p, tail_mask(k - p), acc);
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
MCW_AVX512_INLINE void dot_group(const float* X, int64_t ldx, const float* W, int64_t ldw,
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

MCW_AVX512 void avx512_rows_dot(const float* X, int64_t ldx, const float* W, int64_t ldw,
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

const GemmIsa& gemm_isa_avx512() {
  static const GemmIsa isa{"avx512", kMr, kNr, 256, 8 * kMr, 256, avx512_block,
                           avx512_pack_transposed, avx512_rows_dot};
  return isa;
}

}  // namespace mcw::gemm_detail

#else  // not x86-64: the driver never selects this path, but keep the symbol.

namespace mcw::gemm_detail {
const GemmIsa& gemm_isa_avx512() { return gemm_isa_generic(); }
}  // namespace mcw::gemm_detail

#endif
