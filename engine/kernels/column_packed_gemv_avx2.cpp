// The AVX2 path of the GPTQ/AWQ small-m product (column_packed_gemv.h): the AVX-512 path's
// loops with 8-lane vectors, 8 outputs per vector for GPTQ (half a 64-byte line of a qweight
// row) and lines of 8 words (64 outputs) for AWQ, the last one loaded with a lane mask.
// Functions carry the target attribute, so the file builds with the baseline flags and only
// runs when cpu_features() reports AVX2. Each weight is the decoder's value (s·(q − z),
// rounded to the scales' dtype), so the result is the exact f32 product up to summation
// order, as on AVX-512.
#include <algorithm>
#include <vector>

#include "engine/kernels/column_packed_isa.h"
#include "engine/kernels/gemv_output.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"

namespace mcw::column_detail {
namespace {

constexpr int64_t kLanes = 8;  // outputs per vector

// s·(q − z) for codes `bits` wide at `shift` of each lane, rounded to f16 when the scales are.
template <bool kF16>
MCW_AVX2_INLINE __m256 weight(__m256i codes, int shift, __m256i mask, __m256 s, __m256 z) {
  const __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(codes, shift), mask));
  const __m256 v = _mm256_mul_ps(s, _mm256_sub_ps(q, z));
  if constexpr (kF16) return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  return v;
}

// The scales and zero points of group g for outputs [o0, o0 + 8), widened to f32.
template <bool kF16>
MCW_AVX2_INLINE void group_params(const ColumnPackedCodes& w, int64_t g, int64_t o0, float* s,
                                  float* z) {
  if constexpr (kF16)
    _mm256_storeu_ps(s, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(
                            static_cast<const uint16_t*>(w.scales) + g * w.out + o0))));
  else
    _mm256_storeu_ps(s, _mm256_loadu_ps(static_cast<const float*>(w.scales) + g * w.out + o0));
  const uint32_t* qz = w.qzeros + g * w.zero_words;
  for (int t = 0; t < kLanes; ++t) {  // zero points packed along the outputs
    const int64_t bit = (o0 + t) * w.bits;
    z[t] = float((qz[bit >> 5] >> (bit & 31)) & ((1u << w.bits) - 1)) + w.zero_offset;
  }
}

// Act-order: outputs [o0, o0 + 8) against M rows of x, any input in any group. sz holds
// each group's 8 scales then 8 zero points, widened once here.
template <int M, bool kF16>
MCW_AVX2 void chunk(const ColumnPackedCodes& w, const float* X, int64_t ldx, int64_t o0, float* sz,
                    __m256* acc) {
  const int per = 32 / w.bits;
  const __m256i mask = _mm256_set1_epi32((1 << w.bits) - 1);
  for (int64_t g = 0; g < w.groups; ++g)
    group_params<kF16>(w, g, o0, sz + 2 * kLanes * g, sz + 2 * kLanes * g + kLanes);
  for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t wr = 0; wr < w.in / per; ++wr) {
    const __m256i codes =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qweight + wr * w.out + o0));
    for (int k = 0; k < per; ++k) {
      const int64_t in = wr * per + k;
      const int64_t g = w.g_idx ? w.g_idx[in] : in / w.group_size;
      const __m256 s = _mm256_loadu_ps(sz + 2 * kLanes * g),
                   z = _mm256_loadu_ps(sz + 2 * kLanes * g + kLanes);
      const __m256 v = weight<kF16>(codes, k * w.bits, mask, s, z);
      for (int i = 0; i < M; ++i)
        acc[i] = _mm256_fmadd_ps(v, _mm256_set1_ps(X[i * ldx + in]), acc[i]);
    }
  }
}

// Groups of whole words: the task sweeps word rows across all its outputs, with the running
// sums in an L1 buffer and each group's parameters widened when the sweep enters it.
template <int M, bool kF16>
MCW_AVX2 void sweep(const ColumnPackedCodes& w, const float* X, int64_t ldx, int64_t c0, int64_t c1,
                    float* sums) {
  const int per = 32 / w.bits;
  const int64_t width = (c1 - c0) * kLanes, o_begin = c0 * kLanes;
  const __m256i mask = _mm256_set1_epi32((1 << w.bits) - 1);
  thread_local std::vector<float> sz;
  sz.resize(size_t(2 * kLanes * (c1 - c0)));
  std::fill_n(sums, M * width, 0.0f);
  for (int64_t g = 0; g < w.groups; ++g) {
    for (int64_t c = 0; c < c1 - c0; ++c)
      group_params<kF16>(w, g, o_begin + c * kLanes, sz.data() + 2 * kLanes * c,
                         sz.data() + 2 * kLanes * c + kLanes);
    const int64_t w0 = g * w.group_size / per, w1 = std::min(w.in, (g + 1) * w.group_size) / per;
    for (int64_t wr = w0; wr < w1; ++wr) {
      const uint32_t* line = w.qweight + wr * w.out + o_begin;
      const float* x = X + wr * per;
      for (int64_t c = 0; c < c1 - c0; ++c) {
        if (c % 2 == 0)  // the same outputs' line a few word rows on
          _mm_prefetch(reinterpret_cast<const char*>(line + 4 * w.out + c * kLanes), _MM_HINT_T0);
        const __m256i codes =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + c * kLanes));
        const __m256 s = _mm256_loadu_ps(sz.data() + 2 * kLanes * c);
        const __m256 z = _mm256_loadu_ps(sz.data() + 2 * kLanes * c + kLanes);
        __m256 a[M];
        for (int i = 0; i < M; ++i) a[i] = _mm256_loadu_ps(sums + i * width + c * kLanes);
        for (int k = 0; k < per; ++k) {
          const __m256 v = weight<kF16>(codes, k * w.bits, mask, s, z);
          for (int i = 0; i < M; ++i)
            a[i] = _mm256_fmadd_ps(v, _mm256_set1_ps(x[i * ldx + k]), a[i]);
        }
        for (int i = 0; i < M; ++i) _mm256_storeu_ps(sums + i * width + c * kLanes, a[i]);
      }
    }
  }
}

template <int M, bool kF16>
MCW_AVX2 void outputs(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y,
                      int64_t ldy, int64_t c0, int64_t c1, const float* bias, bool accumulate) {
  const int64_t width = (c1 - c0) * kLanes;
  thread_local std::vector<float> sums, sz;
  sums.resize(size_t(M * width));
  if (!w.g_idx && w.group_size % (32 / w.bits) == 0) {
    sweep<M, kF16>(w, X, ldx, c0, c1, sums.data());
  } else {
    sz.resize(size_t(2 * kLanes * w.groups));
    __m256 acc[M];
    for (int64_t c = c0; c < c1; ++c) {
      chunk<M, kF16>(w, X, ldx, c * kLanes, sz.data(), acc);
      for (int i = 0; i < M; ++i)
        _mm256_storeu_ps(sums.data() + i * width + (c - c0) * kLanes, acc[i]);
    }
  }
  const GemvOutput out{Y, ldy, bias, accumulate};
  for (int i = 0; i < M; ++i)
    for (int64_t o = 0; o < width; ++o) out.store(i, c0 * kLanes + o, sums[size_t(i * width + o)]);
}

// AWQ: lines of 8 words are 64 outputs, nibble p of lane t being output 8t + kAwqOutput[p];
// accumulators per nibble position, each group's scales put in that order once per line.
constexpr int kAwqOutput[8] = {0, 2, 4, 6, 1, 3, 5, 7};

template <int M, bool kF16>
MCW_AVX2 void awq_lines(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y,
                        int64_t ldy, int64_t l0, int64_t l1, const float* bias, bool accumulate) {
  const int64_t words = w.out / 8;
  const __m256i nib = _mm256_set1_epi32(15);
  for (int64_t l = l0; l < l1; ++l) {
    const int64_t o0 = 64 * l;
    const int lanes =
        int(std::min<int64_t>(kLanes, words - kLanes * l));  // a last line may be short
    const __m256i valid =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 acc[M][8];
    for (int i = 0; i < M; ++i)
      for (int p = 0; p < 8; ++p) acc[i][p] = _mm256_setzero_ps();
    for (int64_t g = 0; g < w.groups; ++g) {
      alignas(32) float st[8][kLanes] = {};
      for (int t = 0; t < lanes; ++t)
        for (int p = 0; p < 8; ++p) {
          const int64_t at = g * w.out + o0 + 8 * t + kAwqOutput[p];
          st[p][t] = kF16 ? _cvtsh_ss(static_cast<const uint16_t*>(w.scales)[at])
                          : static_cast<const float*>(w.scales)[at];
        }
      const __m256i zl = _mm256_maskload_epi32(
          reinterpret_cast<const int*>(w.qzeros + g * w.zero_words + kLanes * l), valid);
      __m256 s[8], z[8];
      for (int p = 0; p < 8; ++p) {
        s[p] = _mm256_load_ps(st[p]);
        z[p] =
            _mm256_add_ps(_mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(zl, 4 * p), nib)),
                          _mm256_set1_ps(w.zero_offset));
      }
      const int64_t i1 = std::min(w.in, (g + 1) * w.group_size);
      for (int64_t in = g * w.group_size; in < i1; ++in) {
        _mm_prefetch(reinterpret_cast<const char*>(w.qweight + (in + 4) * words + kLanes * l),
                     _MM_HINT_T0);
        const __m256i codes = _mm256_maskload_epi32(
            reinterpret_cast<const int*>(w.qweight + in * words + kLanes * l), valid);
        for (int p = 0; p < 8; ++p) {
          const __m256 v = weight<kF16>(codes, 4 * p, nib, s[p], z[p]);
          for (int i = 0; i < M; ++i)
            acc[i][p] = _mm256_fmadd_ps(v, _mm256_set1_ps(X[i * ldx + in]), acc[i][p]);
        }
      }
    }
    const GemvOutput out{Y, ldy, bias, accumulate};
    for (int i = 0; i < M; ++i)
      for (int p = 0; p < 8; ++p) {
        alignas(32) float v[kLanes];
        _mm256_store_ps(v, acc[i][p]);
        for (int t = 0; t < lanes; ++t) out.store(i, o0 + 8 * t + kAwqOutput[p], v[t]);
      }
  }
}

}  // namespace

void units_avx2(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y, int64_t ldy,
                int64_t m, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  const bool f16 = w.scale_dtype == DType::F16;
  with_m(m, [&](auto M) {
    constexpr int kM = decltype(M)::value;
    if (w.awq)
      (f16 ? awq_lines<kM, true> : awq_lines<kM, false>)(w, X, ldx, Y, ldy, u0, u1, bias,
                                                         accumulate);
    else
      (f16 ? outputs<kM, true> : outputs<kM, false>)(w, X, ldx, Y, ldy, u0, u1, bias, accumulate);
  });
}

}  // namespace mcw::column_detail

#else

namespace mcw::column_detail {
void units_avx2(const ColumnPackedCodes&, const float*, int64_t, float*, int64_t, int64_t, int64_t,
                int64_t, const float*, bool) {}
}  // namespace mcw::column_detail

#endif
