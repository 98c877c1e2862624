// The AVX-512 path of the compressed-tensors small-m product (row_packed_gemv.h): lines of
// 16 words (64 bytes). Functions carry the target attribute, so the file builds with the
// baseline flags and only runs when cpu_features() reports AVX-512.
#include <vector>

#include "engine/kernels/gemv_output.h"
#include "engine/kernels/row_packed_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/block_gemv_avx512_util.h"

namespace mcw::row_detail {
namespace {

template <int M, bool kF16>
MCW_BLOCK512 void rows(const RowPackedCodes& w, const TensorDecoder& params, const float* xs,
                       float* Y, int64_t ldy, int64_t r0, int64_t r1, const float* bias,
                       bool accumulate) {
  const int per = 32 / w.bits;
  const int64_t span = 16 * per, lines = w.in / span;
  // Groups of whole lines take one scale per line; smaller groups (span a multiple of
  // group_size) one per lane l: group (line·span + per·l) / group_size.
  const bool wide = w.group_size % span == 0;
  const int64_t lines_per_group = wide ? w.group_size / span : 0, groups_per_line = span / w.group_size;
  alignas(64) int32_t lane_offset[16];
  for (int l = 0; l < 16; ++l) lane_offset[l] = int32_t(per * l / w.group_size);
  const __m512i lane_group = _mm512_load_si512(lane_offset);
  const __m512i mask = _mm512_set1_epi32((1 << w.bits) - 1);
  thread_local RowParameters rp;
  for (int64_t o = r0; o < r1; ++o) {
    rp.load(params, o, w.groups);
    const uint32_t* row = w.q + o * w.words;
    __m512 acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < lines; ++b) {
      __m512 s, z;
      if (wide) {
        const int64_t g = b / lines_per_group;
        s = _mm512_set1_ps(rp.scale[size_t(g)]), z = _mm512_set1_ps(rp.zero[size_t(g)]);
      } else {
        const __m512i g = _mm512_add_epi32(_mm512_set1_epi32(int(b * groups_per_line)),
                                           lane_group);
        s = _mm512_i32gather_ps(g, rp.scale.data(), 4), z = _mm512_i32gather_ps(g, rp.zero.data(), 4);
      }
      // A few lines ahead (into the next row at the end): the loads of a mapped file's
      // pages otherwise stall the loop (perf: half its time on this load).
      _mm_prefetch(reinterpret_cast<const char*>(row + 16 * (b + 16)), _MM_HINT_T0);
      const __m512i codes = _mm512_loadu_si512(row + 16 * b);
      for (int k = 0; k < per; ++k) {
        const __m512 q = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(codes, unsigned(k * w.bits)), mask));
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(q, z), s);
        if constexpr (kF16) v = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        for (int i = 0; i < M; ++i)
          acc[i] = _mm512_fmadd_ps(v, _mm512_loadu_ps(xs + i * w.in + b * span + 16 * k), acc[i]);
      }
    }
    for (int i = 0; i < M; ++i) {
      float v = _mm512_reduce_add_ps(acc[i]);
      if (bias) v += bias[o];
      float& y = Y[i * ldy + o];
      y = accumulate ? y + v : v;
    }
  }
}

}  // namespace

void rows_avx512(const RowPackedCodes& w, const TensorDecoder& params, const float* xs, float* Y,
                 int64_t ldy, int64_t m, int64_t r0, int64_t r1, const float* bias, bool accumulate) {
  with_m(m, [&](auto M) {
    if (w.scale_dtype == DType::F16)
      rows<decltype(M)::value, true>(w, params, xs, Y, ldy, r0, r1, bias, accumulate);
    else
      rows<decltype(M)::value, false>(w, params, xs, Y, ldy, r0, r1, bias, accumulate);
  });
}

}  // namespace mcw::row_detail

#else

namespace mcw::row_detail {
void rows_avx512(const RowPackedCodes&, const TensorDecoder&, const float*, float*, int64_t, int64_t,
                 int64_t, int64_t, const float*, bool) {}
}  // namespace mcw::row_detail

#endif
