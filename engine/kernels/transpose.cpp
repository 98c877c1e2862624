#include "engine/kernels/transpose.h"

#include <algorithm>

#include "engine/kernels/cpu_features.h"

#if defined(__x86_64__)
// GCC 12's AVX-512 unpacks start from a deliberately undefined register, which
// -W(maybe-)uninitialized reports inside the compiler's own header.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace mcw {

namespace {

void transpose_scalar(const float* src, int64_t lds, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                      float* dst, int64_t ldd) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) dst[c * ldd + r] = src[r * lds + c];
}

#if defined(__x86_64__)
// One 16 × 16 block: rows r[i] in, columns out. Pairs of rows interleave by 32 bits, then
// by 64 bits (r[4i + j] then holds rows 4i..4i+3 of columns 4L + j in 128-bit lane L), then
// lanes gather into whole columns.
__attribute__((target("avx512f"))) void block16(const float* src, int64_t lds, float* dst,
                                                int64_t ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]),
                  c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 a = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
    const __m512 b = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
    const __m512 c = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    const __m512 d = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    _mm512_storeu_ps(dst + (j)*ldd, _mm512_shuffle_f32x4(a, c, 0x88));
    _mm512_storeu_ps(dst + (4 + j) * ldd, _mm512_shuffle_f32x4(b, d, 0x88));
    _mm512_storeu_ps(dst + (8 + j) * ldd, _mm512_shuffle_f32x4(a, c, 0xDD));
    _mm512_storeu_ps(dst + (12 + j) * ldd, _mm512_shuffle_f32x4(b, d, 0xDD));
  }
}
#endif

}  // namespace

void transpose_f32(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                   int64_t ldd) {
  int64_t rows16 = 0, cols16 = 0;
#if defined(__x86_64__)
  if (cpu_features().level == SimdLevel::Avx512) {
    rows16 = rows / 16 * 16, cols16 = cols / 16 * 16;
    for (int64_t r = 0; r < rows16; r += 16)
      for (int64_t c = 0; c < cols16; c += 16)
        block16(src + r * lds + c, lds, dst + c * ldd + r, ldd);
  }
#endif
  transpose_scalar(src, lds, 0, rows16, cols16, cols, dst, ldd);  // right edge
  constexpr int64_t kB = 16;  // the rest in blocks, so neither side is walked a column at a time
  for (int64_t r0 = rows16; r0 < rows; r0 += kB)
    for (int64_t c0 = 0; c0 < cols; c0 += kB)
      transpose_scalar(src, lds, r0, std::min(rows, r0 + kB), c0, std::min(cols, c0 + kB), dst,
                       ldd);
}

}  // namespace mcw
