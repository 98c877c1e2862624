// compressed-tensors row-packed small-m product: see row_packed_gemv.h.
#include "engine/kernels/row_packed_gemv.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <stdexcept>
#include <vector>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/gemv_output.h"

#if defined(__x86_64__)
#include "engine/kernels/block_gemv_avx512_util.h"
#endif

namespace mcw {
namespace {

#if defined(__x86_64__)

// x rearranged per line of 16 words: entry (line, k, l) = x[line·16·per + per·l + k].
void line_order(const float* x, int64_t in, int per, float* out) {
  const int64_t span = 16 * per;
  for (int64_t b = 0; b < in / span; ++b)
    for (int k = 0; k < per; ++k)
      for (int l = 0; l < 16; ++l) out[b * span + 16 * k + l] = x[b * span + per * l + k];
}

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
  thread_local std::vector<float> scale, zero_f;
  thread_local std::vector<int32_t> zero;
  scale.resize(size_t(w.groups)), zero.resize(size_t(w.groups)), zero_f.resize(size_t(w.groups));
  for (int64_t o = r0; o < r1; ++o) {
    params.row_parameters(o, scale.data(), zero.data());
    for (int64_t g = 0; g < w.groups; ++g) zero_f[size_t(g)] = float(zero[size_t(g)]);
    const uint32_t* row = w.q + o * w.words;
    __m512 acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < lines; ++b) {
      __m512 s, z;
      if (wide) {
        const int64_t g = b / lines_per_group;
        s = _mm512_set1_ps(scale[size_t(g)]), z = _mm512_set1_ps(zero_f[size_t(g)]);
      } else {
        const __m512i g = _mm512_add_epi32(_mm512_set1_epi32(int(b * groups_per_line)),
                                           lane_group);
        s = _mm512_i32gather_ps(g, scale.data(), 4), z = _mm512_i32gather_ps(g, zero_f.data(), 4);
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

#endif

}  // namespace

bool gemv_row_packed(const RowPackedCodes& w, const TensorDecoder& params, const float* X,
                     int64_t ldx, float* Y, int64_t ldy, int64_t m, const float* bias,
                     bool accumulate) {
  if (m < 0 || m > kRowPackedMaxM) throw std::invalid_argument("gemv_row_packed: m outside [0, 8]");
  if (ldx < w.in || ldy < w.out) throw std::invalid_argument("gemv_row_packed: leading dimension too small");
#if defined(__x86_64__)
  const int per = (w.bits == 2 || w.bits == 4 || w.bits == 8) ? 32 / w.bits : 0;
  const int64_t span = 16 * per;
  const bool readable = per && w.group_size > 0 && w.in % span == 0 &&
                        (w.group_size % span == 0 || (span % w.group_size == 0 && w.group_size % per == 0)) &&
                        w.in % w.group_size == 0 && w.words == w.in / per &&
                        (w.scale_dtype == DType::F16 || w.scale_dtype == DType::F32);
  if (cpu_features().level != SimdLevel::Avx512 || !readable) return false;
  if (m == 0 || w.out == 0) return true;
  std::vector<float> xs(size_t(m * w.in));
  for (int64_t i = 0; i < m; ++i) line_order(X + i * ldx, w.in, per, xs.data() + i * w.in);
  const bool f16 = w.scale_dtype == DType::F16;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, w.out, 4), [&](const tbb::blocked_range<int64_t>& r) {
    with_m(m, [&](auto M) {
      if (f16)
        rows<decltype(M)::value, true>(w, params, xs.data(), Y, ldy, r.begin(), r.end(), bias, accumulate);
      else
        rows<decltype(M)::value, false>(w, params, xs.data(), Y, ldy, r.begin(), r.end(), bias, accumulate);
    });
  });
  return true;
#else
  (void)params, (void)X, (void)Y, (void)bias, (void)accumulate;
  return false;
#endif
}

}  // namespace mcw
