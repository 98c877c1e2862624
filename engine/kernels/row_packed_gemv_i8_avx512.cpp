// The int8-activation path of the compressed-tensors small-m product (row_packed_gemv.h) on
// AVX-512 VNNI: the AVX2 path's scheme (row_packed_gemv_i8_avx2.cpp: planes of each load's
// bytes against activations stored in the order they meet the codes) with loads of 16 words,
// and one vpdpbusd per plane adding code · x̂ straight into the 32-bit sums. vpdpbusd
// multiplies u8 by s8 without saturating, so 8-bit codes go in unsigned as stored and the
// zero point stays as it is (the AVX2 path shifts both by 128).
#include <algorithm>
#include <vector>

#include "engine/kernels/gemv_output.h"
#include "engine/kernels/row_packed_gemv.h"
#include "engine/kernels/row_packed_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/simd.h"

#define MCW_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

namespace mcw::row_detail {
namespace {

// RT rows against M rows of x (RT > 1 only for M = 1: independent chains and one load of x
// for all of them); scale and zero: each row's parameters per group.
template <int kBits, int RT, int M>
MCW_VNNI void rows_vnni(const RowPackedCodes& w, const PackedActivations* x,
                        const uint32_t* const* row, const RowParameters* rp, float* y) {
  constexpr int kPer = 32 / kBits, kPlanes = 8 / kBits, kSpan = 16 * kPer;
  const int64_t block = x[0].block;
  const __m512i mask = _mm512_set1_epi8(char((1 << kBits) - 1));
  __m512 acc[RT][M];
  float off[RT][M] = {};
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i] = _mm512_setzero_ps();
  // Groups outermost: a group holds whole activation blocks, and no division per block.
  const int64_t per_group = w.group_size / block, spans = block / kSpan;
  for (int64_t g = 0, ab = 0; g < w.groups; ++g)
    for (int64_t e = 0; e < per_group; ++e, ++ab) {
      __m512i s32[RT][M];
      for (int t = 0; t < RT; ++t)
        for (int i = 0; i < M; ++i) s32[t][i] = _mm512_setzero_si512();
      for (int64_t L = ab * spans; L < (ab + 1) * spans; ++L)
        for (int t = 0; t < RT; ++t) {
          const __m512i codes = _mm512_loadu_si512(row[t] + 16 * L);
          for (int p = 0; p < kPlanes; ++p) {
            const __m512i u =
                kBits == 8 ? codes : _mm512_and_si512(_mm512_srli_epi16(codes, p * kBits), mask);
            for (int i = 0; i < M; ++i)
              s32[t][i] = _mm512_dpbusd_epi32(
                  s32[t][i], u, _mm512_loadu_si512(x[i].xp.data() + L * kSpan / 4 + 16 * p));
          }
        }
      for (int t = 0; t < RT; ++t) {
        const float s = rp[t].scale[size_t(g)], sz = s * rp[t].zero[size_t(g)];
        for (int i = 0; i < M; ++i) {
          acc[t][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s32[t][i]),
                                      _mm512_set1_ps(s * x[i].d[size_t(ab)]), acc[t][i]);
          off[t][i] -= sz * x[i].sum[size_t(ab)];
        }
      }
    }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) y[t * M + i] = _mm512_reduce_add_ps(acc[t][i]) + off[t][i];
}

template <int kBits>
void rows_bits(const RowPackedCodes& w, const TensorDecoder& params, const PackedActivations* x,
               int64_t m, float* Y, int64_t ldy, int64_t r0, int64_t r1, const float* bias,
               bool accumulate) {
  constexpr int kTile = 4;  // rows at a time for one row of x
  thread_local RowParameters rp[kTile];
  const GemvOutput out{Y, ldy, bias, accumulate};
  int64_t o = r0;
  if (m == 1)
    for (; o + kTile <= r1; o += kTile) {
      const uint32_t* rows[kTile];
      for (int t = 0; t < kTile; ++t)
        rp[t].load(params, o + t, w.groups), rows[t] = w.q + (o + t) * w.words;
      float y[kTile];
      rows_vnni<kBits, kTile, 1>(w, x, rows, rp, y);
      for (int t = 0; t < kTile; ++t) out.store(0, o + t, y[t]);
    }
  for (; o < r1; ++o) {
    rp[0].load(params, o, w.groups);
    const uint32_t* row = w.q + o * w.words;
    for (int64_t i0 = 0; i0 < m; i0 += kRowPackedMaxM) {  // the row stays in cache across chunks
      float y[kRowPackedMaxM];
      const int64_t mc = std::min(kRowPackedMaxM, m - i0);
      with_m(mc, [&](auto M) { rows_vnni<kBits, 1, decltype(M)::value>(w, x + i0, &row, rp, y); });
      for (int64_t i = 0; i < mc; ++i) out.store(i0 + i, o, y[i]);
    }
  }
}

}  // namespace

void rows_i8_avx512_vnni(const RowPackedCodes& w, const TensorDecoder& params,
                         const PackedActivations* x, int64_t m, float* Y, int64_t ldy, int64_t r0,
                         int64_t r1, const float* bias, bool accumulate) {
  switch (w.bits) {
    case 2:
      return rows_bits<2>(w, params, x, m, Y, ldy, r0, r1, bias, accumulate);
    case 4:
      return rows_bits<4>(w, params, x, m, Y, ldy, r0, r1, bias, accumulate);
    default:
      return rows_bits<8>(w, params, x, m, Y, ldy, r0, r1, bias, accumulate);
  }
}

}  // namespace mcw::row_detail

#else

namespace mcw::row_detail {
void rows_i8_avx512_vnni(const RowPackedCodes&, const TensorDecoder&, const PackedActivations*,
                         int64_t, float*, int64_t, int64_t, int64_t, const float*, bool) {}
}  // namespace mcw::row_detail

#endif
