// The int8-activation paths of the GPTQ and AWQ products (column_packed_gemv.h) on AVX2.
//
// GPTQ: a word holds `per` = 32 / bits consecutive inputs of one output; a 32-byte load holds
// the words of 8 outputs. Masking each byte's plane p of bits (p = 0 .. 8 / bits − 1) gives,
// in every 32-bit lane, four codes of that output: inputs p, p + planes, p + 2·planes,
// p + 3·planes of the word. The four activations that meet them (x̂ rounded to int8, one
// scale per activation block) are packed once per product into one int32 (PackedActivations),
// so one broadcast and one vpmaddubsw per plane, one vpmaddwd per word row give each
// output's int32 sum of code · x̂ over the word. Over an activation block (whole word rows
// inside one group) the sums stay in int32; at its end one FMA adds s·dx·Σ q·x̂ and one
// subtracts s·z·Σ x̂ for the 8 outputs. 8-bit codes are made signed (q − 128, the zero point
// likewise) so that vpmaddubsw cannot saturate: |q − 128| <= 128, |x̂| <= 127.
//
// The weights are s·(q − z) unrounded: the checkpoint's decoder rounds each to the scales'
// dtype (f16: a relative 2^-11), the f32 path does, this one does not; with the rounding of
// x the result is within Σ|w|·(dx/2 + |x|·2^-11) of the exact product (the tests hold it to
// that). GPTQ without act-order only; AWQ (below) likewise. The driver checks the rest.
#include <algorithm>
#include <vector>

#include "engine/kernels/column_packed_gemv.h"
#include "engine/kernels/column_packed_isa.h"
#include "engine/kernels/gemv_output.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"

namespace mcw::column_detail {
namespace {

constexpr int64_t kLanes = 8;  // outputs per vector

template <int kBits, int M>
MCW_AVX2 void sweep_i8(const ColumnPackedCodes& w, const PackedActivations* x, int64_t c0,
                       int64_t c1, float* sums) {
  constexpr int kPer = 32 / kBits, kPlanes = 8 / kBits;
  const int64_t chunks = c1 - c0, o_begin = c0 * kLanes, block = x[0].block;
  const int64_t block_words = block / kPer;
  const __m256i mask = _mm256_set1_epi8(char((1 << kBits) - 1)), ones = _mm256_set1_epi16(1);
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  thread_local std::vector<float> sz;  // the task's scales, then their scale · zero point
  sz.resize(size_t(2 * kLanes * chunks));
  std::fill_n(sums, M * chunks * kLanes, 0.0f);
  for (int64_t ab = 0; ab < w.in / block; ++ab) {
    if (ab * block % w.group_size == 0) {  // entering group g: its parameters, widened
      const int64_t g = ab * block / w.group_size;
      gptq_group_parameters<kBits>(w, g, o_begin, chunks * kLanes, kBits == 8 ? 128.0f : 0.0f,
                                   sz.data());
    }
    const int64_t wr0 = ab * block_words;
    for (int64_t c = 0; c < chunks; ++c) {
      const uint32_t* col = w.qweight + wr0 * w.out + o_begin + c * kLanes;
      __m256i acc[M];
      for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_si256();
      for (int64_t r = 0; r < block_words; ++r) {
        const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + r * w.out));
        __m256i u[kPlanes];
        for (int p = 0; p < kPlanes; ++p)
          u[p] = kBits == 8 ? _mm256_xor_si256(codes, flip)
                            : _mm256_and_si256(_mm256_srli_epi16(codes, p * kBits), mask);
        for (int i = 0; i < M; ++i) {
          const int32_t* xp = x[i].xp.data() + (wr0 + r) * kPlanes;
          __m256i p16;
          if constexpr (kBits == 8) {  // signed codes: |q| against x̂ carrying q's sign
            p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(u[0], u[0]),
                                       _mm256_sign_epi8(_mm256_set1_epi32(xp[0]), u[0]));
          } else {
            p16 = _mm256_maddubs_epi16(u[0], _mm256_set1_epi32(xp[0]));
            for (int p = 1; p < kPlanes; ++p)
              p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(u[p], _mm256_set1_epi32(xp[p])));
          }
          acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p16, ones));
        }
      }
      const __m256 s = _mm256_loadu_ps(sz.data() + c * kLanes);
      const __m256 s_z = _mm256_loadu_ps(sz.data() + (chunks + c) * kLanes);
      for (int i = 0; i < M; ++i) {
        float* out = sums + (i * chunks + c) * kLanes;
        __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i]),
                                   _mm256_mul_ps(s, _mm256_set1_ps(x[i].d[size_t(ab)])),
                                   _mm256_loadu_ps(out));
        v = _mm256_fnmadd_ps(s_z, _mm256_set1_ps(x[i].sum[size_t(ab)]), v);
        _mm256_storeu_ps(out, v);
      }
    }
  }
}

template <int kBits, int M>
void outputs_i8(const ColumnPackedCodes& w, const PackedActivations* x, float* Y, int64_t ldy,
                int64_t c0, int64_t c1, const float* bias, bool accumulate) {
  const int64_t width = (c1 - c0) * kLanes;
  thread_local std::vector<float> sums;
  sums.resize(size_t(M * width));
  sweep_i8<kBits, M>(w, x, c0, c1, sums.data());
  const GemvOutput out{Y, ldy, bias, accumulate};
  for (int i = 0; i < M; ++i)
    for (int64_t o = 0; o < width; ++o) out.store(i, c0 * kLanes + o, sums[size_t(i * width + o)]);
}

template <int kBits>
void units_bits(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  with_m(m, [&](auto M) {
    outputs_i8<kBits, decltype(M)::value>(w, x, Y, ldy, u0, u1, bias, accumulate);
  });
}

// ---- AWQ: codes packed along the outputs (column_packed_awq_i8.h). ----

MCW_AVX2_INLINE __m256i awq_dot(__m256i acc, __m256i codes, __m256i x) {
  return _mm256_add_epi32(acc,
                          _mm256_madd_epi16(_mm256_maddubs_epi16(codes, x), _mm256_set1_epi16(1)));
}

#define MCW_AWQ_TARGET MCW_AVX2
#include "engine/kernels/column_packed_awq_i8.h"
#undef MCW_AWQ_TARGET

}  // namespace

void units_i8_awq_avx2(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                       int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  (w.scale_dtype == DType::F16 ? awq_units<true> : awq_units<false>)(w, x, m, Y, ldy, u0, u1, bias,
                                                                     accumulate);
}

void units_i8_avx2(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                   int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  switch (w.bits) {
    case 2:
      return units_bits<2>(w, x, m, Y, ldy, u0, u1, bias, accumulate);
    case 4:
      return units_bits<4>(w, x, m, Y, ldy, u0, u1, bias, accumulate);
    default:
      return units_bits<8>(w, x, m, Y, ldy, u0, u1, bias, accumulate);
  }
}

}  // namespace mcw::column_detail

#else

namespace mcw::column_detail {
void units_i8_awq_avx2(const ColumnPackedCodes&, const PackedActivations*, int64_t, float*, int64_t,
                       int64_t, int64_t, const float*, bool) {}
void units_i8_avx2(const ColumnPackedCodes&, const PackedActivations*, int64_t, float*, int64_t,
                   int64_t, int64_t, const float*, bool) {}
}  // namespace mcw::column_detail

#endif
