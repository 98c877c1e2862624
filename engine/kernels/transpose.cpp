#include "engine/kernels/transpose.h"

#include <algorithm>

#include "engine/kernels/cpu_features.h"

#if defined(__x86_64__)
// GCC 12's AVX-512 unpacks start from a deliberately undefined register, which
// -W(maybe-)uninitialized reports inside the compiler's own header.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "engine/kernels/avx512_transpose.h"
#endif

namespace mcw {

namespace {

void transpose_scalar(const float* src, int64_t lds, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                      float* dst, int64_t ldd) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) dst[c * ldd + r] = src[r * lds + c];
}

#if defined(__x86_64__)
// One 16 × 16 block: rows in, through the registers, columns out.
__attribute__((target("avx512f"))) void block16(const float* src, int64_t lds, float* dst,
                                                int64_t ldd) {
  __m512 v[16];
  for (int i = 0; i < 16; ++i) v[i] = _mm512_loadu_ps(src + i * lds);
  transpose16(v);
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, v[i]);
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
