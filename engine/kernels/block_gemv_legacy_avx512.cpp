// The fused AVX-512 VNNI product for the 32-value types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// IQ4_NL) and IQ4_XS, whose 32-value sub-blocks behave alike (block_gemv.h). Functions carry
// the target attribute, so the file builds with the baseline flags and only runs when
// cpu_features() reports AVX-512 VNNI.
//
// Two blocks at a time: their 64 codes u go from the weight's bytes into one vector (Q8_0:
// q + 128; nibble types: both blocks' low nibbles, then their high ones, the fifth bits of
// Q5_0/Q5_1 from a byte mask; IQ4: through a shuffle of the grid + 128), one vpdpbusd
// against the activations stored in that order gives 16 lanes of 4-product sums (8 per
// block), and one FMA scales them by s·dx of their block. Each block's value is s·u + off
// (Q8_0: off = −128·d, Q4_0: −8·d, Q4_1: m, ...); the offsets enter as off·Σx̂ per block.
// A row whose block count is odd ends in one block done the portable way.
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/kquant_blocks.h"
#include "engine/kernels/block_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/block_gemv_avx512_util.h"

#define MCW_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define MCW_VNNI_INLINE MCW_VNNI inline __attribute__((always_inline))

namespace mcw::block_detail {
namespace {

// The 16 IQ4 grid values + 128 (kIq4Grid), as a byte shuffle table in both 128-bit lanes.
alignas(32) constexpr uint8_t kIq4Codes[32] = {
    1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241,
    1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};

MCW_VNNI_INLINE __m256i two16(const uint8_t* a, const uint8_t* b) {
  return _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1);
}

// Both blocks' 16 nibble bytes as [low nibbles of a, of b, high nibbles of a, of b].
MCW_VNNI_INLINE __m512i nibble_pair(const uint8_t* a, const uint8_t* b, bool iq4) {
  const __m256i y = two16(a, b), nib = _mm256_set1_epi8(0x0f);
  __m256i lo = _mm256_and_si256(y, nib), hi = _mm256_and_si256(_mm256_srli_epi16(y, 4), nib);
  if (iq4) {
    const __m256i table = _mm256_load_si256(reinterpret_cast<const __m256i*>(kIq4Codes));
    lo = _mm256_shuffle_epi8(table, lo), hi = _mm256_shuffle_epi8(table, hi);
  }
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Q5_0/Q5_1: bit j of qh is value j's fifth bit (j < 16 low nibbles, j >= 16 high ones).
MCW_VNNI_INLINE __m512i fifth_bits(const uint8_t* qha, const uint8_t* qhb) {
  uint32_t a, b;
  std::memcpy(&a, qha, 4), std::memcpy(&b, qhb, 4);
  const uint64_t m = uint64_t(a & 0xffff) | (uint64_t(b & 0xffff) << 16) |
                     (uint64_t(a >> 16) << 32) | (uint64_t(b >> 16) << 48);
  return _mm512_maskz_mov_epi8(m, _mm512_set1_epi8(0x10));
}

MCW_VNNI_INLINE float h(uint16_t v) { return _cvtsh_ss(v); }

// The 64 codes of blocks 2p and 2p + 1 (for IQ4_XS: sub-blocks 2p, 2p + 1 of 32 values).
template <DType T>
MCW_VNNI_INLINE __m512i load_codes(const uint8_t* row, int64_t p) {
  if constexpr (T == DType::Q8_0) {
    const auto* x = reinterpret_cast<const BlockQ8_0*>(row) + 2 * p;
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[0].qs));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[1].qs));
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1),
                            _mm512_set1_epi8(char(0x80)));  // q + 128
  } else if constexpr (T == DType::Q4_0 || T == DType::IQ4_NL) {
    using B = std::conditional_t<T == DType::Q4_0, BlockQ4_0, BlockIQ4_NL>;
    const B* x = reinterpret_cast<const B*>(row) + 2 * p;
    return nibble_pair(x[0].qs, x[1].qs, T == DType::IQ4_NL);
  } else if constexpr (T == DType::Q4_1) {
    const auto* x = reinterpret_cast<const BlockQ4_1*>(row) + 2 * p;
    return nibble_pair(x[0].qs, x[1].qs, false);
  } else if constexpr (T == DType::Q5_0 || T == DType::Q5_1) {
    using B = std::conditional_t<T == DType::Q5_0, BlockQ5_0, BlockQ5_1>;
    const B* x = reinterpret_cast<const B*>(row) + 2 * p;
    return _mm512_or_si512(nibble_pair(x[0].qs, x[1].qs, false), fifth_bits(x[0].qh, x[1].qh));
  } else {  // IQ4_XS
    const uint8_t* qs = reinterpret_cast<const BlockIQ4_XS*>(row)[p / 4].qs + 32 * (p % 4);
    return nibble_pair(qs, qs + 16, true);
  }
}

// Each block's (sub-block's) scale s and offset off of the row, value = s·u + off: one
// pass per row, so that the pairs' loop only loads them. The f16 fields are gathered 16
// blocks at a time.
template <DType T>
MCW_VNNI void row_scales(const uint8_t* row, int64_t blocks, float* s, float* off) {
  if constexpr (T == DType::IQ4_XS) {
    const auto* x = reinterpret_cast<const BlockIQ4_XS*>(row);
    for (int64_t c = 0; c < blocks / 8; ++c) {
      const float d = h(x[c].d);
      for (int ib = 0; ib < 8; ++ib) {
        const int ls = ((x[c].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) |
                       (((x[c].scales_h >> (2 * ib)) & 3) << 4);
        s[8 * c + ib] = d * float(ls - 32), off[8 * c + ib] = -128.0f * s[8 * c + ib];
      }
    }
  } else {
    constexpr int64_t kBytes = T == DType::Q8_0 ? sizeof(BlockQ8_0)
                               : T == DType::Q4_0 ? sizeof(BlockQ4_0)
                               : T == DType::Q4_1 ? sizeof(BlockQ4_1)
                               : T == DType::Q5_0 ? sizeof(BlockQ5_0)
                               : T == DType::Q5_1 ? sizeof(BlockQ5_1)
                                                  : sizeof(BlockIQ4_NL);
    constexpr bool kMin = T == DType::Q4_1 || T == DType::Q5_1;  // f16 m after d
    constexpr float kOff = T == DType::Q8_0 || T == DType::IQ4_NL ? -128.0f
                           : T == DType::Q4_0                    ? -8.0f
                                                                 : -16.0f;
    const __m512i at = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32(int(kBytes)));
    int64_t b = 0;
    for (; b + 16 <= blocks; b += 16) {
      // 4 bytes from each block's start: d in the low half, Q4_1/Q5_1's m in the high one.
      const __m512i f = _mm512_i32gather_epi32(at, row + b * kBytes, 1);
      const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(f));
      _mm512_storeu_ps(s + b, d);
      if constexpr (kMin)
        _mm512_storeu_ps(off + b, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(f, 16))));
      else
        _mm512_storeu_ps(off + b, _mm512_mul_ps(d, _mm512_set1_ps(kOff)));
    }
    for (; b < blocks; ++b) {
      uint16_t f[2];
      std::memcpy(f, row + b * kBytes, 4);
      s[b] = h(f[0]), off[b] = kMin ? h(f[1]) : kOff * s[b];
    }
  }
}

template <DType T, int M>
MCW_VNNI void rows_m(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  constexpr bool kNatural = T == DType::Q8_0;
  // 32-bit lanes of the product: Q8_0's blocks are lanes 0-7 and 8-15; the nibble types'
  // alternate by fours (low nibbles of a, of b, then high nibbles of a, of b).
  const __m512i lane_block = kNatural
      ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
      : _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
  const int64_t pairs = r.k / 64;
  const bool odd = r.k % 64 != 0;
  alignas(64) uint8_t u_tail[32];
  float a_tail[2], b_tail[2];
  thread_local std::vector<float> scale, offset;
  scale.resize(size_t(r.k / 32)), offset.resize(size_t(r.k / 32));
  for (int64_t row = r0; row < r1; ++row) {
    const uint8_t* w = r.w + row * r.row_bytes;
    row_scales<T>(w, r.k / 32, scale.data(), offset.data());
    __m512 acc[M];
    __m128 off[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps(), off[i] = _mm_setzero_ps();
    const int64_t bytes = dtype_info(T).block_bytes;
    for (int64_t p = 0; p < pairs; ++p) {
      // Some lines on (as in the K-quant kernels): the weight stream's loads stall otherwise.
      _mm_prefetch(reinterpret_cast<const char*>(w + (2 * p + 16) * bytes), _MM_HINT_T0);
      const __m512i u = load_codes<T>(w, p);
      // s0, s1, off0, off1 of the two blocks.
      const __m128 so = _mm_loadh_pi(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(scale.data() + 2 * p))),
                                     reinterpret_cast<const __m64*>(offset.data() + 2 * p));
      for (int i = 0; i < M; ++i) {
        const Int8Activations& x = r.x[i];
        const int8_t* q = (kNatural ? x.q.data() : x.q_order.data()) + 64 * p;
        const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(q));
        // dx0, dx1, Σx̂0, Σx̂1 of the two blocks, times s0, s1, off0, off1.
        const __m128 dx = _mm_loadh_pi(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(x.d32.data() + 2 * p))),
                                       reinterpret_cast<const __m64*>(x.sum32.data() + 2 * p));
        const __m128 prod = _mm_mul_ps(so, dx);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
                                 _mm512_permutexvar_ps(lane_block, _mm512_castps128_ps512(prod)), acc[i]);
        off[i] = _mm_add_ps(off[i], prod);  // lanes 2 and 3 are the offsets' terms
      }
    }
    float tail[M] = {};
    if (odd) {  // the last block alone
      unpack_row(T, w + (r.k / 32 - 1) * bytes, 32, u_tail, a_tail, b_tail);
      for (int i = 0; i < M; ++i) {
        const Int8Activations& x = r.x[i];
        const int64_t c0 = r.k - 32;
        for (int g = 0; g < 2; ++g) {
          int32_t s = 0;
          for (int t = 0; t < 16; ++t) s += int32_t(u_tail[16 * g + t]) * int32_t(x.q[size_t(c0 + 16 * g + t)]);
          tail[i] += a_tail[g] * x.d16[size_t(c0 / 16 + g)] * float(s) +
                     b_tail[g] * x.sum16[size_t(c0 / 16 + g)];
        }
      }
    }
    for (int i = 0; i < M; ++i) {
      alignas(16) float o[4];
      _mm_store_ps(o, off[i]);
      y.store(i, row, _mm512_reduce_add_ps(acc[i]) + o[2] + o[3] + tail[i]);
    }
  }
}

template <DType T>
void rows_t(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  with_m(r.m, [&](auto m) { rows_m<T, decltype(m)::value>(r, r0, r1, y); });
}

}  // namespace

void rows_legacy_vnni(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  switch (r.type) {
    case DType::Q8_0: return rows_t<DType::Q8_0>(r, r0, r1, y);
    case DType::Q4_0: return rows_t<DType::Q4_0>(r, r0, r1, y);
    case DType::Q4_1: return rows_t<DType::Q4_1>(r, r0, r1, y);
    case DType::Q5_0: return rows_t<DType::Q5_0>(r, r0, r1, y);
    case DType::Q5_1: return rows_t<DType::Q5_1>(r, r0, r1, y);
    case DType::IQ4_NL: return rows_t<DType::IQ4_NL>(r, r0, r1, y);
    case DType::IQ4_XS: return rows_t<DType::IQ4_XS>(r, r0, r1, y);
    default: return rows_generic(r, r0, r1, y);
  }
}

}  // namespace mcw::block_detail

#else

namespace mcw::block_detail {
void rows_legacy_vnni(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  rows_generic(r, r0, r1, y);
}
}  // namespace mcw::block_detail

#endif
