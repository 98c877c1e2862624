// Internal: what every AVX2 kernel file shares: the target attribute (cpu_features() reports
// the AVX2 level only with FMA and F16C too), a horizontal sum, bits spread to bytes. For SIMD kernel files
// only: it includes simd.h.
#pragma once
#include <cstdint>

#include "engine/kernels/simd.h"

#define MCW_AVX2 __attribute__((target("avx2,fma,f16c")))
#define MCW_AVX2_INLINE MCW_AVX2 inline __attribute__((always_inline))

namespace mcw {

MCW_AVX2_INLINE float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

// Byte i is 0xff where bit i of h is set, else 0.
MCW_AVX2_INLINE __m256i bit_bytes(uint32_t h) {
  const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  const __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(h)), spread), bit);
  return _mm256_cmpeq_epi8(b, bit);
}

}  // namespace mcw
