// The AVX2 path of the compressed-tensors small-m product (row_packed_gemv.h): the AVX-512
// path's loop over lines of 8 words (32 bytes), the activations in that line order. Functions
// carry the target attribute, so the file builds with the baseline flags and only runs when
// cpu_features() reports AVX2. Each weight is the decoder's value ((q − z)·s, rounded to the
// scales' dtype): the exact f32 product up to summation order.
#include <vector>

#include "engine/kernels/gemv_output.h"
#include "engine/kernels/row_packed_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"

namespace mcw::row_detail {
namespace {

constexpr int kLanes = 8;  // words per line

template <int M, bool kF16>
MCW_AVX2 void rows(const RowPackedCodes& w, const TensorDecoder& params, const float* xs, float* Y,
                   int64_t ldy, int64_t r0, int64_t r1, const float* bias, bool accumulate) {
  const int per = 32 / w.bits;
  const int64_t span = kLanes * per, lines = w.in / span;
  // Groups of whole lines take one scale per line; smaller groups (span a multiple of
  // group_size) one per lane l: group (line·span + per·l) / group_size.
  const bool wide = w.group_size % span == 0;
  const int64_t lines_per_group = wide ? w.group_size / span : 0,
                groups_per_line = span / w.group_size;
  alignas(32) int32_t lane_offset[kLanes];
  for (int l = 0; l < kLanes; ++l) lane_offset[l] = int32_t(per * l / w.group_size);
  const __m256i lane_group = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane_offset));
  const __m256i mask = _mm256_set1_epi32((1 << w.bits) - 1);
  thread_local RowParameters rp;
  const GemvOutput out{Y, ldy, bias, accumulate};
  for (int64_t o = r0; o < r1; ++o) {
    rp.load(params, o, w.groups);
    const uint32_t* row = w.q + o * w.words;
    __m256 acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < lines; ++b) {
      __m256 s, z;
      if (wide) {
        const int64_t g = b / lines_per_group;
        s = _mm256_set1_ps(rp.scale[size_t(g)]), z = _mm256_set1_ps(rp.zero[size_t(g)]);
      } else {
        const __m256i g = _mm256_add_epi32(_mm256_set1_epi32(int(b * groups_per_line)), lane_group);
        s = _mm256_i32gather_ps(rp.scale.data(), g, 4), z = _mm256_i32gather_ps(rp.zero.data(), g, 4);
      }
      if (b % 2 == 0)  // a few lines ahead: the mapped file's loads otherwise stall the loop
        _mm_prefetch(reinterpret_cast<const char*>(row + kLanes * (b + 16)), _MM_HINT_T0);
      const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + kLanes * b));
      for (int k = 0; k < per; ++k) {
        const __m256 q =
            _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(codes, k * w.bits), mask));
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(q, z), s);
        if constexpr (kF16) v = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        for (int i = 0; i < M; ++i)
          acc[i] =
              _mm256_fmadd_ps(v, _mm256_loadu_ps(xs + i * w.in + b * span + kLanes * k), acc[i]);
      }
    }
    for (int i = 0; i < M; ++i) out.store(i, o, hsum(acc[i]));
  }
}

}  // namespace

void rows_avx2(const RowPackedCodes& w, const TensorDecoder& params, const float* xs, float* Y,
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
void rows_avx2(const RowPackedCodes&, const TensorDecoder&, const float*, float*, int64_t, int64_t,
               int64_t, int64_t, const float*, bool) {}
}  // namespace mcw::row_detail

#endif
