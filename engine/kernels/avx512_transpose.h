// The in-register transpose of a 16 × 16 f32 block on AVX-512F, shared by the GEMM's packing
// (gemm_avx512.cpp) and transpose_f32 (transpose.cpp). Include it after disabling
// -Wuninitialized and -Wmaybe-uninitialized: GCC 12's unpacks start from a deliberately
// undefined register, which the warnings report inside the compiler's own header.
#pragma once
#if defined(__x86_64__)
#include <immintrin.h>

namespace mcw {

// In-register transpose: afterwards v[c] lane r holds what v[r] lane c held. Four rounds of
// 16 shuffles: pairs of rows, pairs of pairs, then 128-bit lanes twice.
__attribute__((target("avx512f"), always_inline)) inline void transpose16(__m512 (&v)[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
  }
  // u[4g + j]: rows 4g..4g+3, and in 128-bit lane L the column 4L + j.
  __m512 u[16];
  for (int g = 0; g < 4; ++g) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // Gather lane L of the four row groups into v[4L + j]: 0x88 takes 128-bit lanes 0 and 2
  // of each source, 0xdd lanes 1 and 3.
  for (int j = 0; j < 4; ++j) {
    const __m512 s02 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 s13 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);
    const __m512 r02 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 r13 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
    v[j] = _mm512_shuffle_f32x4(s02, r02, 0x88);
    v[8 + j] = _mm512_shuffle_f32x4(s02, r02, 0xdd);
    v[4 + j] = _mm512_shuffle_f32x4(s13, r13, 0x88);
    v[12 + j] = _mm512_shuffle_f32x4(s13, r13, 0xdd);
  }
}

}  // namespace mcw
#endif
