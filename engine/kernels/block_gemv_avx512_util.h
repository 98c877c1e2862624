// Internal: small pieces the fused AVX-512 block products share (block_gemv_*_avx512.cpp).
// For SIMD kernel files only: it includes simd.h.
#pragma once
#include <cstdint>

#include "engine/kernels/simd.h"

#define MCW_BLOCK512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define MCW_BLOCK512_INLINE MCW_BLOCK512 inline __attribute__((always_inline))

namespace mcw::block_detail {

// 16-bit lanes 0-15 hold a, 16-31 hold b (bytes 0-31 / 32-63 of a vector).
MCW_BLOCK512_INLINE __m512i halves(int a, int b) {
  return _mm512_inserti64x4(_mm512_set1_epi16(short(a)), _mm256_set1_epi16(short(b)), 1);
}

// 16-bit lanes 0-7 hold a, 8-15 b, 16-23 c, 24-31 d: a vector of 64 codes' four groups of
// 16 (vpmaddubsw leaves one 16-bit sum per two codes).
MCW_BLOCK512_INLINE __m512i quarters(int a, int b, int c, int d) {
  const __m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(short(a))),
                                             _mm_set1_epi16(short(b)), 1);
  const __m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(short(c))),
                                             _mm_set1_epi16(short(d)), 1);
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// 32 bytes repeated in both halves of a vector.
MCW_BLOCK512_INLINE __m512i twice(const uint8_t* p) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Bits `shift` (and up) of each byte, the shift taken per half (see halves()), masked.
MCW_BLOCK512_INLINE __m512i bits_of(__m512i v, __m512i shift, __m512i mask) {
  return _mm512_and_si512(_mm512_srlv_epi16(v, shift), mask);
}

// Σ_v scale_v · (u_v · q_v) as 16 int32 lanes: u unsigned codes <= 127 (no saturation in
// vpmaddubsw: 2·127·127 < 2^15), q the activations, scale int16 per pair of codes.
MCW_BLOCK512_INLINE __m512i scaled_dot(const __m512i* u, const int8_t* q, const __m512i* scale) {
  __m512i s = _mm512_setzero_si512();
  for (int v = 0; v < 4; ++v) {
    const __m512i p = _mm512_maddubs_epi16(u[v], _mm512_loadu_si512(q + 64 * v));
    s = _mm512_add_epi32(s, _mm512_madd_epi16(p, scale[v]));
  }
  return s;
}

MCW_BLOCK512_INLINE float sum256(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

}  // namespace mcw::block_detail
