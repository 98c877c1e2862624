// AVX-512 BF16 kernel of the bf16-weight GEMM (see bf16_dot_gemm.h). Functions carry the
// target attribute, so the file builds with the baseline flags; the driver calls it only
// when the CPU reports avx512_bf16.
//
// Dot-product form: lanes run along k. One vdpbf16ps takes 32 consecutive bf16 of an x row
// and of a W row, exactly as both lie in memory, and adds the 16 pair products into 16 f32
// lanes; an output is the lane sum once k is done. So W needs no packing (it is read from
// the mapping) and x only the bf16 rounding. A tile of RM x rows × RW W rows keeps RM·RW
// accumulators (24 of 32 registers) and loads RM + RW vectors per RM·RW instructions.
#include "engine/kernels/bf16_dot_gemm.h"

#if defined(__x86_64__)
#include <algorithm>

#include "engine/kernels/simd.h"

#define MCW_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))
#define MCW_BF16_INLINE MCW_BF16 inline __attribute__((always_inline))

namespace mcw::bf16_dot_detail {
namespace {

constexpr int kRm = 6, kRw = 4;
// x rows per cache block: ~256 KiB of bf16, which stays in L2 while RW rows of W (in L1)
// pass over all of it.
constexpr int64_t kXBlockBytes = int64_t(256) << 10;

MCW_BF16_INLINE __m512 dp(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

template <int RM, int RW>
MCW_BF16_INLINE void tile(const uint16_t* X, int64_t ldxb, const uint16_t* W, int64_t ldw,
                          int64_t k, float* Y, int64_t ldy, const float* bias, bool accumulate) {
  __m512 acc[RM][RW];
  for (int i = 0; i < RM; ++i)
    for (int r = 0; r < RW; ++r) acc[i][r] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 32 <= k; p += 32) {
    __m512i w[RW];
    for (int r = 0; r < RW; ++r) w[r] = _mm512_loadu_si512(W + r * ldw + p);
    for (int i = 0; i < RM; ++i) {
      const __m512i x = _mm512_load_si512(X + i * ldxb + p);
      for (int r = 0; r < RW; ++r) acc[i][r] = dp(acc[i][r], x, w[r]);
    }
  }
  if (p < k) {  // masked: a row of W may end where the mapping ends
    const __mmask32 m = __mmask32((uint64_t(1) << (k - p)) - 1);
    __m512i w[RW];
    for (int r = 0; r < RW; ++r) w[r] = _mm512_maskz_loadu_epi16(m, W + r * ldw + p);
    for (int i = 0; i < RM; ++i) {
      const __m512i x = _mm512_load_si512(X + i * ldxb + p);  // zero padded
      for (int r = 0; r < RW; ++r) acc[i][r] = dp(acc[i][r], x, w[r]);
    }
  }
  for (int i = 0; i < RM; ++i)
    for (int r = 0; r < RW; ++r) {
      float v = _mm512_reduce_add_ps(acc[i][r]);
      if (bias) v += bias[r];
      float& o = Y[i * ldy + r];
      o = accumulate ? o + v : v;
    }
}

template <int RW>
MCW_BF16_INLINE void column(const uint16_t* X, int64_t ldxb, const uint16_t* W, int64_t ldw,
                            int64_t k, float* Y, int64_t ldy, int64_t rows, const float* bias,
                            bool accumulate) {
  int64_t i = 0;
  for (; i + kRm <= rows; i += kRm)
    tile<kRm, RW>(X + i * ldxb, ldxb, W, ldw, k, Y + i * ldy, ldy, bias, accumulate);
  const uint16_t* x = X + i * ldxb;
  float* y = Y + i * ldy;
  switch (rows - i) {
    case 1: tile<1, RW>(x, ldxb, W, ldw, k, y, ldy, bias, accumulate); break;
    case 2: tile<2, RW>(x, ldxb, W, ldw, k, y, ldy, bias, accumulate); break;
    case 3: tile<3, RW>(x, ldxb, W, ldw, k, y, ldy, bias, accumulate); break;
    case 4: if constexpr (kRm > 4) tile<4, RW>(x, ldxb, W, ldw, k, y, ldy, bias, accumulate); break;
    case 5: if constexpr (kRm > 5) tile<5, RW>(x, ldxb, W, ldw, k, y, ldy, bias, accumulate); break;
    default: break;
  }
}

}  // namespace

MCW_BF16 void block(const uint16_t* Xb, int64_t ldxb, const uint16_t* W, int64_t ldw, int64_t k,
                    float* Y, int64_t ldy, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                    const float* bias, bool accumulate) {
  const int64_t mb = std::max<int64_t>(kRm, kXBlockBytes / (2 * ldxb) / kRm * kRm);
  for (int64_t ib = i0; ib < i1; ib += mb) {
    const int64_t rows = std::min(mb, i1 - ib);
    const uint16_t* x = Xb + ib * ldxb;
    int64_t j = j0;
    for (; j + kRw <= j1; j += kRw)
      column<kRw>(x, ldxb, W + j * ldw, ldw, k, Y + ib * ldy + j, ldy, rows,
                  bias ? bias + j : nullptr, accumulate);
    for (; j < j1; ++j)
      column<1>(x, ldxb, W + j * ldw, ldw, k, Y + ib * ldy + j, ldy, rows,
                bias ? bias + j : nullptr, accumulate);
  }
}

}  // namespace mcw::bf16_dot_detail

#endif
