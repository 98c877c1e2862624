// The AVX-512 path of the GPTQ/AWQ small-m product (column_packed_gemv.h): 16 outputs per
// vector for GPTQ, lines of 16 words (128 outputs) for AWQ. Functions carry the target
// attribute, so the file builds with the baseline flags and only runs when cpu_features()
// reports AVX-512.
#include <algorithm>
#include <vector>

#include "engine/kernels/column_packed_isa.h"
#include "engine/kernels/gemv_output.h"

#if defined(__x86_64__)
#include "engine/kernels/block_gemv_avx512_util.h"

namespace mcw::column_detail {
namespace {

constexpr int64_t kLanes = 16;  // outputs per vector

// The scales and zero points of group g for outputs [o0, o0 + 16), widened to f32.
template <bool kF16>
MCW_BLOCK512_INLINE void group_params(const ColumnPackedCodes& w, int64_t g, int64_t o0, float* s,
                                      float* z) {
  if constexpr (kF16)
    _mm512_storeu_ps(s, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                            static_cast<const uint16_t*>(w.scales) + g * w.out + o0))));
  else
    _mm512_storeu_ps(s, _mm512_loadu_ps(static_cast<const float*>(w.scales) + g * w.out + o0));
  const uint32_t* qz = w.qzeros + g * w.zero_words;
  for (int t = 0; t < kLanes; ++t) {  // zero points packed along the outputs
    const int64_t bit = (o0 + t) * w.bits;
    z[t] = float((qz[bit >> 5] >> (bit & 31)) & ((1u << w.bits) - 1)) + w.zero_offset;
  }
}

// Outputs [o0, o0 + 16) against M rows of x. sz holds each group's 16 scales then 16 zero
// points, widened once here.
template <int M, bool kF16>
MCW_BLOCK512 void chunk(const ColumnPackedCodes& w, const float* X, int64_t ldx, int64_t o0,
                        float* sz, __m512* acc) {
  const int per = 32 / w.bits;
  const __m512i mask = _mm512_set1_epi32((1 << w.bits) - 1);
  for (int64_t g = 0; g < w.groups; ++g) group_params<kF16>(w, g, o0, sz + 32 * g, sz + 32 * g + 16);
  for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t words = w.in / per;
  for (int64_t wr = 0; wr < words; ++wr) {
    const __m512i codes = _mm512_loadu_si512(w.qweight + wr * w.out + o0);
    const int64_t i0 = wr * per;
    // Without act-order a word's inputs share one group unless a group ends inside it.
    const int64_t g0 = w.g_idx ? -1 : i0 / w.group_size;
    const bool one_group = !w.g_idx && (i0 + per - 1) / w.group_size == g0;
    __m512 s = one_group ? _mm512_loadu_ps(sz + 32 * g0) : _mm512_setzero_ps();
    __m512 z = one_group ? _mm512_loadu_ps(sz + 32 * g0 + 16) : _mm512_setzero_ps();
    for (int k = 0; k < per; ++k) {
      const int64_t in = i0 + k;
      if (!one_group) {
        const int64_t g = w.g_idx ? w.g_idx[in] : in / w.group_size;
        s = _mm512_loadu_ps(sz + 32 * g), z = _mm512_loadu_ps(sz + 32 * g + 16);
      }
      const __m512 q = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(codes, unsigned(k * w.bits)), mask));
      __m512 v = _mm512_mul_ps(s, _mm512_sub_ps(q, z));
      if constexpr (kF16) v = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      for (int i = 0; i < M; ++i) acc[i] = _mm512_fmadd_ps(v, _mm512_set1_ps(X[i * ldx + in]), acc[i]);
    }
  }
}

// Without act-order, groups are runs of whole words: the task sweeps word rows across all
// its outputs (long runs of each 16 KB qweight row, which the prefetcher follows), with
// the running sums of its outputs in an L1 buffer and each group's parameters widened
// when the sweep enters it.
template <int M, bool kF16>
MCW_BLOCK512 void sweep(const ColumnPackedCodes& w, const float* X, int64_t ldx, int64_t c0,
                        int64_t c1, float* sums) {
  const int per = 32 / w.bits;
  const int64_t width = (c1 - c0) * kLanes, o_begin = c0 * kLanes;
  const __m512i mask = _mm512_set1_epi32((1 << w.bits) - 1);
  thread_local std::vector<float> sz;
  sz.resize(size_t(32 * (c1 - c0)));
  std::fill_n(sums, M * width, 0.0f);
  for (int64_t g = 0; g < w.groups; ++g) {
    for (int64_t c = 0; c < c1 - c0; ++c)
      group_params<kF16>(w, g, o_begin + c * kLanes, sz.data() + 32 * c, sz.data() + 32 * c + 16);
    const int64_t w0 = g * w.group_size / per, w1 = std::min(w.in, (g + 1) * w.group_size) / per;
    for (int64_t wr = w0; wr < w1; ++wr) {
      const uint32_t* line = w.qweight + wr * w.out + o_begin;
      const float* x = X + wr * per;
      for (int64_t c = 0; c < c1 - c0; ++c) {
        // The same outputs' line a few word rows on: rows are 16 KB apart at out = 4096.
        _mm_prefetch(reinterpret_cast<const char*>(line + 4 * w.out + c * kLanes), _MM_HINT_T0);
        const __m512i codes = _mm512_loadu_si512(line + c * kLanes);
        const __m512 s = _mm512_loadu_ps(sz.data() + 32 * c), z = _mm512_loadu_ps(sz.data() + 32 * c + 16);
        __m512 a[M];
        for (int i = 0; i < M; ++i) a[i] = _mm512_loadu_ps(sums + i * width + c * kLanes);
        for (int k = 0; k < per; ++k) {
          const __m512 q = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(codes, unsigned(k * w.bits)), mask));
          __m512 v = _mm512_mul_ps(s, _mm512_sub_ps(q, z));
          if constexpr (kF16) v = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
          for (int i = 0; i < M; ++i) a[i] = _mm512_fmadd_ps(v, _mm512_set1_ps(x[i * ldx + k]), a[i]);
        }
        for (int i = 0; i < M; ++i) _mm512_storeu_ps(sums + i * width + c * kLanes, a[i]);
      }
    }
  }
}

template <int M, bool kF16>
MCW_BLOCK512 void outputs(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y,
                          int64_t ldy, int64_t c0, int64_t c1, const float* bias, bool accumulate) {
  const int64_t width = (c1 - c0) * kLanes;
  thread_local std::vector<float> sums, sz;
  sums.resize(size_t(M * width));
  const bool aligned = !w.g_idx && w.group_size % (32 / w.bits) == 0;
  if (aligned) {
    sweep<M, kF16>(w, X, ldx, c0, c1, sums.data());
  } else {  // act-order: any input may be in any group; 16 outputs at a time
    sz.resize(size_t(32 * w.groups));
    __m512 acc[M];
    for (int64_t c = c0; c < c1; ++c) {
      chunk<M, kF16>(w, X, ldx, c * kLanes, sz.data(), acc);
      for (int i = 0; i < M; ++i) _mm512_storeu_ps(sums.data() + i * width + (c - c0) * kLanes, acc[i]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int64_t o = 0; o < width; o += kLanes) {
      __m512 v = _mm512_loadu_ps(sums.data() + i * width + o);
      const int64_t out = c0 * kLanes + o;
      if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + out));
      float* y = Y + i * ldy + out;
      if (accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(y));
      _mm512_storeu_ps(y, v);
    }
}

// AWQ: lines of 16 words are 128 outputs (the last may be shorter), the nibble p of lane w being output
// 8w + kAwqOutput[p]. Accumulators per nibble position (the outputs stay in that order
// until the end); each group's scales are put in the same order once per line.
constexpr int kAwqOutput[8] = {0, 2, 4, 6, 1, 3, 5, 7};

template <int M, bool kF16>
MCW_BLOCK512 void awq_lines(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y,
                            int64_t ldy, int64_t l0, int64_t l1, const float* bias,
                            bool accumulate) {
  const int64_t words = w.out / 8;
  const __m512i nib = _mm512_set1_epi32(15);
  for (int64_t l = l0; l < l1; ++l) {
    const int64_t o0 = 128 * l;
    const int lanes = int(std::min<int64_t>(16, words - 16 * l));  // a last line may be short
    const __mmask16 valid = __mmask16((1u << lanes) - 1);
    __m512 acc[M][8];
    for (int i = 0; i < M; ++i)
      for (int p = 0; p < 8; ++p) acc[i][p] = _mm512_setzero_ps();
    for (int64_t g = 0; g < w.groups; ++g) {
      alignas(64) float st[8][16] = {};
      for (int lane = 0; lane < lanes; ++lane)
        for (int p = 0; p < 8; ++p) {
          const int64_t at = g * w.out + o0 + 8 * lane + kAwqOutput[p];
          st[p][lane] = kF16 ? _cvtsh_ss(static_cast<const uint16_t*>(w.scales)[at])
                             : static_cast<const float*>(w.scales)[at];
        }
      const __m512i zl = _mm512_maskz_loadu_epi32(valid, w.qzeros + g * w.zero_words + 16 * l);
      __m512 s[8], z[8];
      for (int p = 0; p < 8; ++p) {
        s[p] = _mm512_load_ps(st[p]);
        z[p] = _mm512_add_ps(_mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(zl, unsigned(4 * p)), nib)),
                             _mm512_set1_ps(w.zero_offset));
      }
      const int64_t i1 = std::min(w.in, (g + 1) * w.group_size);
      for (int64_t in = g * w.group_size; in < i1; ++in) {
        _mm_prefetch(reinterpret_cast<const char*>(w.qweight + (in + 4) * words + 16 * l), _MM_HINT_T0);
        const __m512i codes = _mm512_maskz_loadu_epi32(valid, w.qweight + in * words + 16 * l);
        for (int p = 0; p < 8; ++p) {
          const __m512 q = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(codes, unsigned(4 * p)), nib));
          __m512 v = _mm512_mul_ps(s[p], _mm512_sub_ps(q, z[p]));
          if constexpr (kF16) v = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
          for (int i = 0; i < M; ++i) acc[i][p] = _mm512_fmadd_ps(v, _mm512_set1_ps(X[i * ldx + in]), acc[i][p]);
        }
      }
    }
    for (int i = 0; i < M; ++i)
      for (int p = 0; p < 8; ++p) {
        alignas(64) float v[16];
        _mm512_store_ps(v, acc[i][p]);
        for (int lane = 0; lane < lanes; ++lane) {
          const int64_t o = o0 + 8 * lane + kAwqOutput[p];
          float r = v[lane] + (bias ? bias[o] : 0.0f);
          float& y = Y[i * ldy + o];
          y = accumulate ? y + r : r;
        }
      }
  }
}

}  // namespace

void units_avx512(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y, int64_t ldy,
                  int64_t m, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  const bool f16 = w.scale_dtype == DType::F16;
  with_m(m, [&](auto M) {
    constexpr int kM = decltype(M)::value;
    if (w.awq)
      (f16 ? awq_lines<kM, true> : awq_lines<kM, false>)(w, X, ldx, Y, ldy, u0, u1, bias, accumulate);
    else
      (f16 ? outputs<kM, true> : outputs<kM, false>)(w, X, ldx, Y, ldy, u0, u1, bias, accumulate);
  });
}

}  // namespace mcw::column_detail

#else

namespace mcw::column_detail {
void units_avx512(const ColumnPackedCodes&, const float*, int64_t, float*, int64_t, int64_t,
                  int64_t, int64_t, const float*, bool) {}
}  // namespace mcw::column_detail

#endif
