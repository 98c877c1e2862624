// Internal: what every AVX2 kernel file shares: the target attribute (cpu_features() reports
// the AVX2 level only with FMA and F16C too) and a horizontal sum. For SIMD kernel files
// only: it includes simd.h.
#pragma once
#include "engine/kernels/simd.h"

#define MCW_AVX2 __attribute__((target("avx2,fma,f16c")))
#define MCW_AVX2_INLINE MCW_AVX2 inline __attribute__((always_inline))

namespace mcw {

MCW_AVX2_INLINE float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

}  // namespace mcw
