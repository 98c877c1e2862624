// The int8-activation path of the compressed-tensors small-m product (row_packed_gemv.h) on
// AVX2. A row's codes run along the inputs, 32 / bits to a word; a 32-byte load holds 8 words
// (a span of 8·per inputs). Masking plane p of every byte gives 32 codes, byte j of word l
// being input per·l + planes·j + p of the span; the activations are stored once per product
// in that order (row_packed_gemv.cpp), so each plane is one vpmaddubsw against a plain load,
// the planes' int16 sums one vpmaddwd per span, int32 over an activation block inside a
// group, one FMA by s·dx per block and s·z·Σx̂ per block in a scalar. 8-bit codes are made
// signed (q − 128, the zero point likewise) so that vpmaddubsw cannot saturate.
//
// The weights are s·(q − z) unrounded (the decoder rounds each to the scales' dtype), so the
// result is within Σ|w|·(dx/2 + |x|·2^-11) of the exact product, as for GPTQ.
#include <algorithm>
#include <vector>

#include "engine/kernels/gemv_output.h"
#include "engine/kernels/row_packed_gemv.h"
#include "engine/kernels/row_packed_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"

namespace mcw::row_detail {
namespace {

// Row o against M rows of x; scale and zero: the row's parameters per group (zero − 128 for
// 8-bit codes).
template <int kBits, int M>
MCW_AVX2 void row_i8(const RowPackedCodes& w, const PackedActivations* x, const uint32_t* row,
                     const float* scale, const float* zero, float* y) {
  constexpr int kPer = 32 / kBits, kPlanes = 8 / kBits, kSpan = 8 * kPer;
  const int64_t block = x[0].block;
  const __m256i mask = _mm256_set1_epi8(char((1 << kBits) - 1)), ones = _mm256_set1_epi16(1);
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  __m256 acc[M];
  float off[M] = {};
  for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps();
  // Groups outermost: a group holds whole activation blocks, and no division per block.
  const int64_t per_group = w.group_size / block, spans = block / kSpan;
  for (int64_t g = 0, ab = 0; g < w.groups; ++g)
    for (int64_t e = 0; e < per_group; ++e, ++ab) {
      __m256i s32[M];
      for (int i = 0; i < M; ++i) s32[i] = _mm256_setzero_si256();
      for (int64_t L = ab * spans; L < (ab + 1) * spans; ++L) {
        const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 8 * L));
        __m256i u[kPlanes];
        for (int p = 0; p < kPlanes; ++p)
          u[p] = kBits == 8 ? _mm256_xor_si256(codes, flip)
                            : _mm256_and_si256(_mm256_srli_epi16(codes, p * kBits), mask);
        for (int i = 0; i < M; ++i) {
          const auto* xq = reinterpret_cast<const __m256i*>(x[i].xp.data() + L * kSpan / 4);
          __m256i p16;
          if constexpr (kBits == 8) {  // signed codes: |q| against x̂ carrying q's sign
            p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(u[0], u[0]),
                                       _mm256_sign_epi8(_mm256_loadu_si256(xq), u[0]));
          } else {
            p16 = _mm256_maddubs_epi16(u[0], _mm256_loadu_si256(xq));
            for (int p = 1; p < kPlanes; ++p)
              p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(u[p], _mm256_loadu_si256(xq + p)));
          }
          s32[i] = _mm256_add_epi32(s32[i], _mm256_madd_epi16(p16, ones));
        }
      }
      for (int i = 0; i < M; ++i) {
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[i]),
                                 _mm256_set1_ps(scale[g] * x[i].d[size_t(ab)]), acc[i]);
        off[i] -= scale[g] * zero[g] * x[i].sum[size_t(ab)];
      }
    }
  for (int i = 0; i < M; ++i) y[i] = hsum(acc[i]) + off[i];
}

template <int kBits>
void rows_bits(const RowPackedCodes& w, const TensorDecoder& params, const PackedActivations* x,
               int64_t m, float* Y, int64_t ldy, int64_t r0, int64_t r1, const float* bias,
               bool accumulate) {
  thread_local RowParameters rp;
  const GemvOutput out{Y, ldy, bias, accumulate};
  for (int64_t o = r0; o < r1; ++o) {
    rp.load(params, o, w.groups, kBits == 8 ? 128 : 0);
    const uint32_t* row = w.q + o * w.words;
    for (int64_t i0 = 0; i0 < m; i0 += kRowPackedMaxM) {  // the row stays in cache across chunks
      float y[kRowPackedMaxM];
      const int64_t mc = std::min(kRowPackedMaxM, m - i0);
      with_m(mc, [&](auto M) {
        row_i8<kBits, decltype(M)::value>(w, x + i0, row, rp.scale.data(), rp.zero.data(), y);
      });
      for (int64_t i = 0; i < mc; ++i) out.store(i0 + i, o, y[i]);
    }
  }
}

}  // namespace

void rows_i8_avx2(const RowPackedCodes& w, const TensorDecoder& params, const PackedActivations* x,
                  int64_t m, float* Y, int64_t ldy, int64_t r0, int64_t r1, const float* bias,
                  bool accumulate) {
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
void rows_i8_avx2(const RowPackedCodes&, const TensorDecoder&, const PackedActivations*, int64_t,
                  float*, int64_t, int64_t, int64_t, const float*, bool) {}
}  // namespace mcw::row_detail

#endif
