// The int8-activation path of the GPTQ product (column_packed_gemv.h) on AVX-512 VNNI: the
// AVX2 path's scheme (column_packed_gemv_i8_avx2.cpp: planes of each word row's bytes against
// four activations packed in one int32) with 16 outputs per vector, and one vpdpbusd per
// plane adding code · x̂ straight into the 32-bit sums where AVX2 needs vpmaddubsw, a 16-bit
// add and vpmaddwd. vpdpbusd multiplies u8 by s8 without saturating, so 8-bit codes go in
// unsigned as stored and the zero point stays as it is (the AVX2 path shifts both by 128).
// The result is the same exact product of the codes with x̂ (up to f32 rounding). AWQ's
// body is the AVX2 path's (column_packed_awq_i8.h) with vpdpbusd for its multiply.
#include <algorithm>
#include <vector>

#include "engine/kernels/column_packed_gemv.h"
#include "engine/kernels/column_packed_isa.h"
#include "engine/kernels/gemv_output.h"

#if defined(__x86_64__)
#include "engine/kernels/simd.h"

#define MCW_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

namespace mcw::column_detail {
namespace {

constexpr int64_t kLanes = 16;  // outputs per vector

template <int kBits, int M>
MCW_VNNI void sweep_vnni(const ColumnPackedCodes& w, const PackedActivations* x, int64_t c0,
                         int64_t c1, float* sums) {
  constexpr int kPer = 32 / kBits, kPlanes = 8 / kBits;
  const int64_t chunks = c1 - c0, o_begin = c0 * kLanes, block = x[0].block;
  const int64_t block_words = block / kPer;
  const __m512i mask = _mm512_set1_epi8(char((1 << kBits) - 1));
  thread_local std::vector<float> sz;  // the task's scales, then their scale · zero point
  sz.resize(size_t(2 * kLanes * chunks));
  std::fill_n(sums, M * chunks * kLanes, 0.0f);
  for (int64_t ab = 0; ab < w.in / block; ++ab) {
    if (ab * block % w.group_size == 0) {  // entering group g: its parameters, widened
      const int64_t g = ab * block / w.group_size;
      gptq_group_parameters<kBits>(w, g, o_begin, chunks * kLanes, 0.0f, sz.data());
    }
    const int64_t wr0 = ab * block_words;
    for (int64_t c = 0; c < chunks; ++c) {
      const uint32_t* col = w.qweight + wr0 * w.out + o_begin + c * kLanes;
      __m512i acc[M];
      for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_si512();
      for (int64_t r = 0; r < block_words; ++r) {
        const __m512i codes = _mm512_loadu_si512(col + r * w.out);
        __m512i u[kPlanes];
        for (int p = 0; p < kPlanes; ++p)
          u[p] = kBits == 8 ? codes : _mm512_and_si512(_mm512_srli_epi16(codes, p * kBits), mask);
        for (int i = 0; i < M; ++i) {
          const int32_t* xp = x[i].xp.data() + (wr0 + r) * kPlanes;
          for (int p = 0; p < kPlanes; ++p)
            acc[i] = _mm512_dpbusd_epi32(acc[i], u[p], _mm512_set1_epi32(xp[p]));
        }
      }
      const __m512 s = _mm512_loadu_ps(sz.data() + c * kLanes);
      const __m512 s_z = _mm512_loadu_ps(sz.data() + (chunks + c) * kLanes);
      for (int i = 0; i < M; ++i) {
        float* out = sums + (i * chunks + c) * kLanes;
        __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]),
                                   _mm512_mul_ps(s, _mm512_set1_ps(x[i].d[size_t(ab)])),
                                   _mm512_loadu_ps(out));
        v = _mm512_fnmadd_ps(s_z, _mm512_set1_ps(x[i].sum[size_t(ab)]), v);
        _mm512_storeu_ps(out, v);
      }
    }
  }
}

template <int kBits, int M>
void outputs_vnni(const ColumnPackedCodes& w, const PackedActivations* x, float* Y, int64_t ldy,
                  int64_t c0, int64_t c1, const float* bias, bool accumulate) {
  const int64_t width = (c1 - c0) * kLanes;
  thread_local std::vector<float> sums;
  sums.resize(size_t(M * width));
  sweep_vnni<kBits, M>(w, x, c0, c1, sums.data());
  const GemvOutput out{Y, ldy, bias, accumulate};
  for (int i = 0; i < M; ++i)
    for (int64_t o = 0; o < width; ++o) out.store(i, c0 * kLanes + o, sums[size_t(i * width + o)]);
}

template <int kBits>
void units_bits(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  with_m(m, [&](auto M) {
    outputs_vnni<kBits, decltype(M)::value>(w, x, Y, ldy, u0, u1, bias, accumulate);
  });
}

// ---- AWQ (column_packed_awq_i8.h): 8 lanes as on AVX2, one vpdpbusd per code vector. ----

MCW_VNNI inline __m256i awq_dot(__m256i acc, __m256i codes, __m256i x) {
  return _mm256_dpbusd_epi32(acc, codes, x);
}

#define MCW_AWQ_TARGET MCW_VNNI
#include "engine/kernels/column_packed_awq_i8.h"
#undef MCW_AWQ_TARGET

}  // namespace

void units_i8_awq_avx512_vnni(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m,
                              float* Y, int64_t ldy, int64_t u0, int64_t u1, const float* bias,
                              bool accumulate) {
  (w.scale_dtype == DType::F16 ? awq_units<true> : awq_units<false>)(w, x, m, Y, ldy, u0, u1, bias,
                                                                     accumulate);
}

void units_i8_avx512_vnni(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m,
                          float* Y, int64_t ldy, int64_t u0, int64_t u1, const float* bias,
                          bool accumulate) {
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
void units_i8_awq_avx512_vnni(const ColumnPackedCodes&, const PackedActivations*, int64_t, float*,
                              int64_t, int64_t, int64_t, const float*, bool) {}
void units_i8_avx512_vnni(const ColumnPackedCodes&, const PackedActivations*, int64_t, float*,
                          int64_t, int64_t, int64_t, const float*, bool) {}
}  // namespace mcw::column_detail

#endif
