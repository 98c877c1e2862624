// AVX-512 VNNI kernel of int8_gemm.h. Per step of 8 slots: one 64-byte load gives 16 rows ×
// 4 slots of codes in its low nibbles and the next 4 slots in its high nibbles (8-bit codes:
// two loads); each of the 8 rows of x̂ meets them in two vpdpbusd, its 4 bytes broadcast from
// memory. 8 rows × 16 outputs of 32-bit sums stay in registers through a block, then go to
// the f32 sums with the block's scales. Target attributes, so the file builds with the
// baseline flags and runs only where cpu_features() reports AVX-512 VNNI.
#include <cstring>

#include "engine/kernels/int8_gemm_isa.h"

// GCC 12's _mm512_cvtepi32_ps passes an undefined register, which -Wmaybe-uninitialized
// reports inside the compiler's own header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#if defined(__x86_64__)
#include <immintrin.h>

#define MCW_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

namespace mcw::int8_gemm_detail {

namespace {

MCW_VNNI inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

template <bool Wide>
MCW_VNNI void tile_vnni(const Int8GemmWeight& w, int64_t tile, const int8_t* xq, const float* d,
                        const float* xs, float* out) {
  constexpr int R = int(Int8GemmWeight::kXRows);
  const int64_t slots = w.row_slots(), nb = int64_t(w.blocks().size());
  const uint8_t* codes = w.tile_codes(tile);
  const float *scales = w.tile_scales(tile), *offsets = w.tile_offsets(tile);
  const __m512i low = _mm512_set1_epi8(0x0f);
  __m512 acc[R];
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const Int8GemmBlock& blk = w.blocks()[size_t(b)];
    __m512i sum[R];
    for (int i = 0; i < R; ++i) sum[i] = _mm512_setzero_si512();
    const uint8_t* c = codes + blk.slot0 / 8 * w.step_bytes();
    for (int64_t s = blk.slot0; s < blk.slot0 + blk.length; s += 8) {
      __m512i lo, hi;
      if constexpr (Wide) {
        lo = _mm512_loadu_si512(c);
        hi = _mm512_loadu_si512(c + 64);
        c += 128;
      } else {
        const __m512i v = _mm512_loadu_si512(c);
        lo = _mm512_and_si512(v, low);
        hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
        c += 64;
      }
      for (int i = 0; i < R; ++i) {
        const int8_t* x = xq + i * slots + s;
        sum[i] = _mm512_dpbusd_epi32(sum[i], lo, bcast4(x));
        sum[i] = _mm512_dpbusd_epi32(sum[i], hi, bcast4(x + 4));
      }
    }
    const __m512 scale = _mm512_loadu_ps(scales + blk.group * 16);
    const __m512 offset = _mm512_loadu_ps(offsets + blk.group * 16);
    for (int i = 0; i < R; ++i) {
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[i]),
                               _mm512_mul_ps(scale, _mm512_set1_ps(d[i * nb + b])), acc[i]);
      acc[i] = _mm512_fmadd_ps(offset, _mm512_set1_ps(xs[i * nb + b]), acc[i]);
    }
  }
  for (int i = 0; i < R; ++i) _mm512_storeu_ps(out + i * 16, acc[i]);
}

}  // namespace

MCW_VNNI void tile_avx512_vnni(const Int8GemmWeight& w, int64_t tile, const int8_t* xq,
                               const float* d, const float* xs, float* out) {
  if (w.bits() == 8)
    tile_vnni<true>(w, tile, xq, d, xs, out);
  else
    tile_vnni<false>(w, tile, xq, d, xs, out);
}

}  // namespace mcw::int8_gemm_detail

#endif
