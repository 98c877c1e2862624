// Internal: the K-quants' packed 6-bit sub-block scales as bytes in an SSE register, for the
// fused block products at every SIMD level (block_gemv_kquant_avx512.cpp,
// block_gemv_avx2.cpp). Baseline SSE2 only, so that kernels of any target inline them.
// For SIMD kernel files only: it includes simd.h.
#pragma once
#include <cstdint>
#include <cstring>

#include "engine/kernels/simd.h"

namespace mcw::block_detail {

// Scales (bytes 0-7) and mins (bytes 8-15) of Q4_K's eight sub-blocks from their 12 packed
// bytes (kquant_scale_min's layout).
inline __m128i k4_scales_mins(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
  const uint32_t sc_lo = w[0] & low6, sc_hi = (w[2] & low4) | (((w[0] >> 6) & top2) << 4);
  const uint32_t mn_lo = w[1] & low6, mn_hi = ((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4);
  return _mm_set_epi32(int(mn_hi), int(mn_lo), int(sc_hi), int(sc_lo));
}

// Q3_K's sixteen 6-bit scales minus 32 from their 12 packed bytes: low nibbles in bytes
// 0-7 (groups 0-7 low, 8-15 high), top two bits of group j in byte 8 + j % 4 at 2·(j / 4).
inline __m128i k3_scales(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t low4 = 0x0f0f0f0f, top2 = 0x03030303;
  const __m128i s = _mm_set_epi32(int(((w[1] >> 4) & low4) | (((w[2] >> 6) & top2) << 4)),
                                  int(((w[0] >> 4) & low4) | (((w[2] >> 4) & top2) << 4)),
                                  int((w[1] & low4) | (((w[2] >> 2) & top2) << 4)),
                                  int((w[0] & low4) | ((w[2] & top2) << 4)));
  return _mm_sub_epi8(s, _mm_set1_epi8(32));
}

}  // namespace mcw::block_detail
