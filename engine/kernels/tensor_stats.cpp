#include "engine/kernels/tensor_stats.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/simd.h"

namespace mcw {

// ---- per-chunk kernels ------------------------------------------------------------------
// Float lanes accumulate at most kFlush values each before the partial sums move to
// double, which keeps the mean exact to ~1e-7 relative on million-value chunks.
static constexpr size_t kFlush = 4096;

// GCC 12's _mm512_cvtps_pd and _mm512_extractf64x4_pd trip -Wuninitialized (GCC bug
// 105593); these spellings avoid the undefined-vector idiom inside them.
__attribute__((target("avx512f"))) static inline __m256 hi256(__m512 v) {
  return _mm512_castps512_ps256(_mm512_shuffle_f32x4(v, v, 0xEE));
}
__attribute__((target("avx512f"))) static inline __m512d widen_pd(__m256 v) {
  return _mm512_maskz_cvtps_pd(__mmask8(0xff), v);
}

static void merge_scalar(ChunkStats& s, float v) {
  if (!std::isfinite(v)) return;
  s.min = s.finite ? std::min(s.min, v) : v;
  s.max = s.finite ? std::max(s.max, v) : v;
  s.finite++;
  s.zeros += v == 0.0f;
  s.sum += v;
}

static ChunkStats chunk_stats_generic(const float* x, size_t n) {
  ChunkStats s;
  for (size_t i = 0; i < n; ++i) merge_scalar(s, x[i]);
  return s;
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static ChunkStats chunk_stats_avx512(
    const float* x, size_t n) {
  const __m512 inf = _mm512_set1_ps(INFINITY), zero = _mm512_setzero_ps();
  __m512 vmin = inf, vmax = _mm512_set1_ps(-INFINITY);
  ChunkStats s;
  size_t i = 0;
  while (i + 16 <= n) {
    __m512 acc = zero;
    const size_t end = std::min(n & ~size_t(15), i + kFlush);
    for (; i < end; i += 16) {
      const __m512 v = _mm512_loadu_ps(x + i);
      const __mmask16 fin = _mm512_cmp_ps_mask(_mm512_abs_ps(v), inf, _CMP_LT_OQ);
      acc = _mm512_mask_add_ps(acc, fin, acc, v);
      vmin = _mm512_mask_min_ps(vmin, fin, vmin, v);
      vmax = _mm512_mask_max_ps(vmax, fin, vmax, v);
      s.finite += uint64_t(__builtin_popcount(fin));
      s.zeros += uint64_t(__builtin_popcount(_mm512_cmp_ps_mask(v, zero, _CMP_EQ_OQ)));
    }
    s.sum += _mm512_reduce_add_pd(widen_pd(_mm512_castps512_ps256(acc))) +
             _mm512_reduce_add_pd(widen_pd(hi256(acc)));
  }
  if (s.finite) s.min = _mm512_reduce_min_ps(vmin), s.max = _mm512_reduce_max_ps(vmax);
  for (; i < n; ++i) merge_scalar(s, x[i]);
  return s;
}

__attribute__((target("avx2,fma"))) static ChunkStats chunk_stats_avx2(const float* x, size_t n) {
  const __m256 inf = _mm256_set1_ps(INFINITY), zero = _mm256_setzero_ps();
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 vmin = inf, vmax = _mm256_set1_ps(-INFINITY);
  ChunkStats s;
  size_t i = 0;
  while (i + 8 <= n) {
    __m256 acc = zero;
    const size_t end = std::min(n & ~size_t(7), i + kFlush);
    for (; i < end; i += 8) {
      const __m256 v = _mm256_loadu_ps(x + i);
      const __m256 fin = _mm256_cmp_ps(_mm256_and_ps(v, absmask), inf, _CMP_LT_OQ);
      acc = _mm256_add_ps(acc, _mm256_and_ps(v, fin));
      vmin = _mm256_min_ps(vmin, _mm256_blendv_ps(inf, v, fin));
      vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), v, fin));
      s.finite += uint64_t(__builtin_popcount(_mm256_movemask_ps(fin)));
      s.zeros += uint64_t(__builtin_popcount(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_EQ_OQ))));
    }
    alignas(32) double d[4];
    _mm256_store_pd(d, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(acc)),
                                     _mm256_cvtps_pd(_mm256_extractf128_ps(acc, 1))));
    s.sum += (d[0] + d[1]) + (d[2] + d[3]);
  }
  if (s.finite) {
    alignas(32) float lo[8], hi[8];
    _mm256_store_ps(lo, vmin);
    _mm256_store_ps(hi, vmax);
    s.min = *std::min_element(lo, lo + 8);
    s.max = *std::max_element(hi, hi + 8);
  }
  for (; i < n; ++i) merge_scalar(s, x[i]);
  return s;
}

ChunkStats chunk_stats_f32(const float* x, size_t n) {
  switch (cpu_features().level) {
    case SimdLevel::Avx512: return chunk_stats_avx512(x, n);
    case SimdLevel::Avx2: return chunk_stats_avx2(x, n);
    default: return chunk_stats_generic(x, n);
  }
}

// Second pass over data already in cache: squared deviations in double lanes.
static double sq_dev_generic(const float* x, size_t n, double mean) {
  double acc = 0;
  for (size_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) acc += (double(x[i]) - mean) * (double(x[i]) - mean);
  return acc;
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static double sq_dev_avx512(
    const float* x, size_t n, double mean) {
  const __m512 inf = _mm512_set1_ps(INFINITY);
  const __m512d m = _mm512_set1_pd(mean);
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __mmask16 fin = _mm512_cmp_ps_mask(_mm512_abs_ps(v), inf, _CMP_LT_OQ);
    const __m512d d0 = _mm512_sub_pd(widen_pd(_mm512_castps512_ps256(v)), m);
    const __m512d d1 = _mm512_sub_pd(widen_pd(hi256(v)), m);
    a0 = _mm512_mask3_fmadd_pd(d0, d0, a0, __mmask8(fin));
    a1 = _mm512_mask3_fmadd_pd(d1, d1, a1, __mmask8(fin >> 8));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) + sq_dev_generic(x + i, n - i, mean);
}

__attribute__((target("avx2,fma"))) static double sq_dev_avx2(const float* x, size_t n,
                                                              double mean) {
  const __m128 inf = _mm_set1_ps(INFINITY);
  const __m128 absmask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  const __m256d m = _mm256_set1_pd(mean);
  __m256d acc = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m128 v = _mm_loadu_ps(x + i);
    const __m128 fin = _mm_cmplt_ps(_mm_and_ps(v, absmask), inf);
    const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_and_ps(v, fin)), m);
    // Non-finite lanes became 0 above; mask their deviation out entirely.
    const __m256d keep = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_castps_si128(fin)));
    acc = _mm256_fmadd_pd(_mm256_and_pd(d, keep), _mm256_and_pd(d, keep), acc);
  }
  alignas(32) double d[4];
  _mm256_store_pd(d, acc);
  return (d[0] + d[1]) + (d[2] + d[3]) + sq_dev_generic(x + i, n - i, mean);
}

double chunk_sq_dev_f32(const float* x, size_t n, double mean) {
  switch (cpu_features().level) {
    case SimdLevel::Avx512: return sq_dev_avx512(x, n, mean);
    case SimdLevel::Avx2: return sq_dev_avx2(x, n, mean);
    default: return sq_dev_generic(x, n, mean);
  }
}

// ---- whole tensors ------------------------------------------------------------------------
namespace {
struct Partial {  // combined with Chan et al.'s parallel variance formula
  uint64_t count = 0, finite = 0, zeros = 0;
  double mean = 0, m2 = 0, min = INFINITY, max = -INFINITY;
  void join(const Partial& o) {
    if (o.finite) {
      const double n = double(finite + o.finite), delta = o.mean - mean;
      mean += delta * double(o.finite) / n;
      m2 += o.m2 + delta * delta * double(finite) * double(o.finite) / n;
      min = std::min(min, o.min);
      max = std::max(max, o.max);
      finite += o.finite;
    }
    count += o.count;
    zeros += o.zeros;
  }
};
}  // namespace

TensorStats tensor_stats(const Tensor& t, const CancelToken* cancel) {
  const size_t n = size_t(t.numel());
  constexpr size_t kChunk = 1 << 16;  // a multiple of every block size
  const size_t chunks = (n + kChunk - 1) / kChunk;
  const bool direct = t.dtype() == DType::F32;

  // Deterministic reduction: the same file always prints the same statistics.
  Partial total = tbb::parallel_deterministic_reduce(
      tbb::blocked_range<size_t>(0, chunks, 1), Partial{},
      [&](const tbb::blocked_range<size_t>& r, Partial acc) {
        std::vector<float> buf(direct ? 0 : kChunk);
        for (size_t c = r.begin(); c != r.end(); ++c) {
          if (cancel) cancel->throw_if_cancelled();
          const size_t first = c * kChunk, len = std::min(kChunk, n - first);
          const float* x = direct ? t.as<float>() + first : buf.data();
          if (!direct) t.to_f32(buf.data(), first, len);
          const ChunkStats s = chunk_stats_f32(x, len);
          Partial p;
          p.count = len;
          p.finite = s.finite;
          p.zeros = s.zeros;
          if (s.finite) {
            p.mean = s.sum / double(s.finite);
            p.m2 = chunk_sq_dev_f32(x, len, p.mean);
            p.min = s.min;
            p.max = s.max;
          }
          acc.join(p);
        }
        return acc;
      },
      [](Partial a, const Partial& b) {
        a.join(b);
        return a;
      });

  TensorStats out;
  out.count = total.count;
  out.finite = total.finite;
  out.zeros = total.zeros;
  out.nonfinite = total.count - total.finite;
  if (total.finite) {
    out.min = total.min;
    out.max = total.max;
    out.mean = total.mean;
    out.std = std::sqrt(total.m2 / double(total.finite));
  }
  return out;
}

}  // namespace mcw
