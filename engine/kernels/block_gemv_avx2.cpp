// The fused AVX2 products for every ggml block type (block_gemv.h), for CPUs without
// AVX-512 (AMD Zen 2-4, Intel client cores) and for the 32-value types on AVX-512 CPUs
// without VNNI. Functions carry the target attribute, so the file builds with the baseline
// flags and only runs when cpu_features() reports AVX2.
//
// A 32-byte load gives 32 codes in their natural order for every type (nibble types: a
// block's 16 bytes, low nibbles then high; Q4_K/Q5_K: 32 bytes, low nibbles one sub-block,
// high nibbles the next; Q2_K/Q3_K: one 2-bit plane of a half's 32 bytes; Q6_K: one nibble
// half of 32 low-bit bytes with two high bits), so the activations are used as quantised,
// with no reordering. Per 32 codes and row of x:
//   p = vpmaddubsw(u, q)          16 sums of two products, int16 (u <= 63, or |w| <= 128
//                                 against q signed by w for the signed types: no saturation)
//   K-quants: s += vpmaddwd(p, scale per group of 16), int32 over the super-block, one FMA
//             by d·dx per super-block (ggml's Q8_K), mins and offsets from the sums per 16;
//   32-value types: one FMA of vpmaddwd(p, 1) by d·dx per block, offsets (Q4_0's −8·d,
//             Q4_1's m, ...) as off·Σx̂ per block.
// Same value as the portable path up to f32 rounding (the tests hold both to the f64 sum).
#include <cstring>

#include "engine/core/blocks.h"
#include "engine/core/kquant_blocks.h"
#include "engine/kernels/block_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"
#include "engine/kernels/block_gemv_kquant_scales.h"

namespace mcw::block_detail {
namespace {

MCW_AVX2_INLINE __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

MCW_AVX2_INLINE float h(uint16_t v) { return _cvtsh_ss(v); }

// A block's 16 nibble bytes as 32 codes: low nibbles (values 0-15), then high (16-31).
MCW_AVX2_INLINE __m256i nibbles(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0f));
}

// The 32 bits of Q5_0/Q5_1's qh as 32 bytes, 0x10 where the bit (value j's fifth) is set.
MCW_AVX2_INLINE __m256i fifth_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  return _mm256_and_si256(bit_bytes(bits), _mm256_set1_epi8(0x10));
}

// The IQ4 grid as a byte shuffle table in both 128-bit lanes.
MCW_AVX2_INLINE __m256i iq4_grid() {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Grid)));
}

// 16 int16 sums of two products each: u unsigned codes against q.
MCW_AVX2_INLINE __m256i dot_u(__m256i u, const int8_t* q) {
  return _mm256_maddubs_epi16(u, load32(q));
}
// The same for signed codes w: |w| against q carrying w's sign.
MCW_AVX2_INLINE __m256i dot_s(__m256i w, const int8_t* q) {
  return _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(load32(q), w));
}

// ---- The K-quants (and IQ4_XS): super-blocks of 256, eight vectors of 32 codes. ----

enum class K { Q2, Q3, Q4, Q5, Q6, IQ4XS };

struct SuperBlock {
  __m256i u[8];    // codes, natural order (IQ4_XS: signed grid values)
  __m128i scale8;  // int8 per group of 16
  float d, dmin;   // dmin: the mins' factor (Q2_K, Q4_K, Q5_K)
  __m256i mins16;  // int16 per group of 16 (Q2_K, Q4_K, Q5_K)
};

// The int16 scales of the eight vectors' 16 pairs: vector v's first 8 pairs are group 2v,
// its last 8 group 2v + 1. Each half's eight int16 scales sit in both 128-bit lanes, so one
// byte shuffle per vector spreads them.
MCW_AVX2_INLINE void spread_scales(__m128i scale8, __m256i* scale) {
  const __m256i half[2] = {
      _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(scale8)),
      _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128(scale8, 8)))};
  for (int v = 0; v < 8; ++v) {
    const int j = v % 4;  // int16 2j in the low lane, 2j + 1 in the high one
    const __m256i idx = _mm256_set_m128i(_mm_set1_epi16(short((4 * j + 2) | (4 * j + 3) << 8)),
                                         _mm_set1_epi16(short(4 * j | (4 * j + 1) << 8)));
    scale[v] = _mm256_shuffle_epi8(half[v / 4], idx);
  }
}

// IQ4_XS's eight 6-bit sub-block scales ls − 32 (bytes 0-7): low nibbles from scales_l, the
// top two bits from scales_h, spread with a multiply that moves field v to the top of 16-bit
// lane v.
MCW_AVX2_INLINE __m128i iq4xs_scales(const BlockIQ4_XS& x) {
  uint32_t l;
  std::memcpy(&l, x.scales_l, 4);
  const __m128i lb = _mm_cvtsi32_si128(int(l));
  const __m128i lo =
      _mm_and_si128(_mm_unpacklo_epi8(lb, _mm_srli_epi16(lb, 4)), _mm_set1_epi8(0x0f));
  const __m128i top = _mm_mullo_epi16(
      _mm_set1_epi16(short(x.scales_h)),
      _mm_set_epi16(1 << 0, 1 << 2, 1 << 4, 1 << 6, 1 << 8, 1 << 10, 1 << 12, 1 << 14));
  const __m128i hi = _mm_packus_epi16(_mm_srli_epi16(top, 14), _mm_setzero_si128());
  return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
}

template <K T>
MCW_AVX2_INLINE void load_block(const uint8_t* p, SuperBlock& b) {
  const __m256i nib = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  const __m256i four = _mm256_set1_epi8(4);
  if constexpr (T == K::Q4 || T == K::Q5) {
    const auto* x = reinterpret_cast<const BlockQ4_K*>(p);  // d, dmin, scales: same in Q5_K
    const uint8_t* qs = T == K::Q5 ? reinterpret_cast<const BlockQ5_K*>(p)->qs : x->qs;
    b.d = h(x->d), b.dmin = h(x->dmin);
    const __m128i sm = k4_scales_mins(x->scales);
    b.scale8 = _mm_unpacklo_epi8(sm, sm);  // each sub-block's scale for its two groups
    const __m128i mn = _mm_srli_si128(sm, 8);
    b.mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn, mn));
    for (int j = 0; j < 4; ++j) {
      const __m256i l = load32(qs + 32 * j);
      b.u[2 * j] = _mm256_and_si256(l, nib);
      b.u[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(l, 4), nib);
    }
    if constexpr (T == K::Q5) {  // the fifth bit of sub-block v's value l: bit v of qh[l]
      const __m256i qh = load32(reinterpret_cast<const BlockQ5_K*>(p)->qh);
      for (int v = 0; v < 8; ++v)
        b.u[v] = _mm256_or_si256(
            b.u[v], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, v), one), 4));
    }
  } else if constexpr (T == K::Q2 || T == K::Q3) {
    // Vector 4·half + plane: bits 2·plane of the half's 32 bytes (Q3_K: plus bit
    // 4·half + plane of hmask as the third bit).
    const uint8_t* qs;
    if constexpr (T == K::Q2) {
      const auto* x = reinterpret_cast<const BlockQ2_K*>(p);
      qs = x->qs, b.d = h(x->d), b.dmin = h(x->dmin);
      const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x->scales));
      b.scale8 = _mm_and_si128(s, _mm_set1_epi8(0x0f));
      b.mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0x0f)));
    } else {
      const auto* x = reinterpret_cast<const BlockQ3_K*>(p);
      qs = x->qs, b.d = h(x->d), b.dmin = 0;
      b.scale8 = k3_scales(x->scales);
    }
    for (int half = 0; half < 2; ++half) {
      const __m256i l = load32(qs + 32 * half);
      for (int plane = 0; plane < 4; ++plane) {
        __m256i u = _mm256_and_si256(_mm256_srli_epi16(l, 2 * plane), two);
        if constexpr (T == K::Q3) {  // bit j of hmask moved to bit 2 in one shift
          const __m256i hm = load32(reinterpret_cast<const BlockQ3_K*>(p)->hmask);
          const int j = 4 * half + plane;
          const __m256i at2 = j < 2 ? _mm256_slli_epi16(hm, 2 - j) : _mm256_srli_epi16(hm, j - 2);
          u = _mm256_or_si256(u, _mm256_and_si256(at2, four));
        }
        b.u[4 * half + plane] = u;
      }
    }
  } else if constexpr (T == K::Q6) {
    const auto* x = reinterpret_cast<const BlockQ6_K*>(p);
    b.d = h(x->d), b.dmin = 0;
    b.scale8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x->scales));
    for (int half = 0; half < 2; ++half) {
      const __m256i qh = load32(x->qh + 32 * half);
      for (int p4 = 0; p4 < 4; ++p4) {  // ql[l + 32·(p4 % 2)], nibble p4 / 2; qh bits 2·p4
        const __m256i l = load32(x->ql + 64 * half + 32 * (p4 % 2));
        const __m256i lo = _mm256_and_si256(p4 / 2 ? _mm256_srli_epi16(l, 4) : l, nib);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * p4), two);
        b.u[4 * half + p4] = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
      }
    }
  } else {  // IQ4_XS: sub-block v's 16 bytes through the grid; scale ls − 32 per 32
    const auto* x = reinterpret_cast<const BlockIQ4_XS*>(p);
    b.d = h(x->d), b.dmin = 0;
    const __m128i ls = iq4xs_scales(*x);
    b.scale8 = _mm_unpacklo_epi8(ls, ls);  // each sub-block's scale for its two groups
    const __m256i grid = iq4_grid();
    for (int v = 0; v < 8; ++v) b.u[v] = _mm256_shuffle_epi8(grid, nibbles(x->qs + 16 * v));
  }
}

template <K T, int M>
MCW_AVX2 void rows_k_m(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  const int64_t blocks = r.k / kSuperBlock, bytes = dtype_info(r.type).block_bytes;
  constexpr bool kMins = T == K::Q2 || T == K::Q4 || T == K::Q5;
  constexpr bool kOffset = T == K::Q3 || T == K::Q6;
  constexpr int kOffsetShift = T == K::Q6 ? 5 : 2;  // Q6_K: −32, Q3_K: −4
  for (int64_t row = r0; row < r1; ++row) {
    const uint8_t* w = r.w + row * r.row_bytes;
    __m256 acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t c = 0; c < blocks; ++c) {
      // A few super-blocks on: the weight stream's loads otherwise stall the loop.
      _mm_prefetch(reinterpret_cast<const char*>(w + (c + 4) * bytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w + (c + 4) * bytes + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w + (c + 4) * bytes + 128), _MM_HINT_T0);
      SuperBlock b;
      load_block<T>(w + c * bytes, b);
      __m256i scale[8];
      spread_scales(b.scale8, scale);
      for (int i = 0; i < M; ++i) {
        const Int8Activations& x = r.x[i];
        const int8_t* q = x.q.data() + c * kSuperBlock;
        __m256i s = _mm256_setzero_si256();
        for (int v = 0; v < 8; ++v) {
          const __m256i p = T == K::IQ4XS ? dot_s(b.u[v], q + 32 * v) : dot_u(b.u[v], q + 32 * v);
          s = _mm256_add_epi32(s, _mm256_madd_epi16(p, scale[v]));
        }
        const float dx = x.d[size_t(c)];
        if constexpr (kMins || kOffset) {
          const __m256i qsum = load32(x.qsum16.data() + 16 * c);
          if constexpr (kMins) {
            const __m256 mins = _mm256_cvtepi32_ps(_mm256_madd_epi16(b.mins16, qsum));
            acc[i] = _mm256_fmadd_ps(mins, _mm256_set1_ps(-b.dmin * dx), acc[i]);
          } else {
            const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(b.scale8), qsum);
            s = _mm256_sub_epi32(s, _mm256_slli_epi32(off, kOffsetShift));
          }
        }
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(b.d * dx), acc[i]);
      }
    }
    for (int i = 0; i < M; ++i) y.store(i, row, hsum(acc[i]));
  }
}

// ---- The 32-value types: one block of 32 codes per vector. ----

// Block c's codes, with its value = scale·u + offset (signed types: offset 0, u signed).
template <DType T>
MCW_AVX2_INLINE __m256i block_codes(const uint8_t* row, int64_t c, float& scale, float& offset) {
  if constexpr (T == DType::Q8_0) {
    const auto& x = reinterpret_cast<const BlockQ8_0*>(row)[c];
    scale = h(x.d), offset = 0;
    return load32(x.qs);
  } else if constexpr (T == DType::Q4_0) {
    const auto& x = reinterpret_cast<const BlockQ4_0*>(row)[c];
    scale = h(x.d), offset = -8.0f * scale;
    return nibbles(x.qs);
  } else if constexpr (T == DType::Q4_1) {
    const auto& x = reinterpret_cast<const BlockQ4_1*>(row)[c];
    scale = h(x.d), offset = h(x.m);
    return nibbles(x.qs);
  } else if constexpr (T == DType::Q5_0) {
    const auto& x = reinterpret_cast<const BlockQ5_0*>(row)[c];
    scale = h(x.d), offset = -16.0f * scale;
    return _mm256_or_si256(nibbles(x.qs), fifth_bits(x.qh));
  } else if constexpr (T == DType::Q5_1) {
    const auto& x = reinterpret_cast<const BlockQ5_1*>(row)[c];
    scale = h(x.d), offset = h(x.m);
    return _mm256_or_si256(nibbles(x.qs), fifth_bits(x.qh));
  } else {  // IQ4_NL
    const auto& x = reinterpret_cast<const BlockIQ4_NL*>(row)[c];
    scale = h(x.d), offset = 0;
    return _mm256_shuffle_epi8(iq4_grid(), nibbles(x.qs));
  }
}

template <DType T, int M>
MCW_AVX2 void rows_32_m(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  constexpr bool kSigned = T == DType::Q8_0 || T == DType::IQ4_NL;
  const int64_t blocks = r.k / 32, bytes = dtype_info(T).block_bytes;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t row = r0; row < r1; ++row) {
    const uint8_t* w = r.w + row * r.row_bytes;
    __m256 acc[M];
    float off[M] = {};
    for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t c = 0; c < blocks; ++c) {
      _mm_prefetch(reinterpret_cast<const char*>(w + (c + 16) * bytes), _MM_HINT_T0);
      float scale, offset;
      const __m256i u = block_codes<T>(w, c, scale, offset);
      for (int i = 0; i < M; ++i) {
        const Int8Activations& x = r.x[i];
        const int8_t* q = x.q.data() + 32 * c;
        const __m256i p = kSigned ? dot_s(u, q) : dot_u(u, q);
        const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
        acc[i] = _mm256_fmadd_ps(s, _mm256_set1_ps(scale * x.d32[size_t(c)]), acc[i]);
        if constexpr (!kSigned) off[i] += offset * x.sum32[size_t(c)];
      }
    }
    for (int i = 0; i < M; ++i) y.store(i, row, hsum(acc[i]) + off[i]);
  }
}

template <K T>
void rows_k(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  with_m(r.m, [&](auto m) { rows_k_m<T, decltype(m)::value>(r, r0, r1, y); });
}
template <DType T>
void rows_32(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  with_m(r.m, [&](auto m) { rows_32_m<T, decltype(m)::value>(r, r0, r1, y); });
}

}  // namespace

void rows_avx2(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  switch (r.type) {
    case DType::Q8_0:
      return rows_32<DType::Q8_0>(r, r0, r1, y);
    case DType::Q4_0:
      return rows_32<DType::Q4_0>(r, r0, r1, y);
    case DType::Q4_1:
      return rows_32<DType::Q4_1>(r, r0, r1, y);
    case DType::Q5_0:
      return rows_32<DType::Q5_0>(r, r0, r1, y);
    case DType::Q5_1:
      return rows_32<DType::Q5_1>(r, r0, r1, y);
    case DType::IQ4_NL:
      return rows_32<DType::IQ4_NL>(r, r0, r1, y);
    case DType::Q2_K:
      return rows_k<K::Q2>(r, r0, r1, y);
    case DType::Q3_K:
      return rows_k<K::Q3>(r, r0, r1, y);
    case DType::Q4_K:
      return rows_k<K::Q4>(r, r0, r1, y);
    case DType::Q5_K:
      return rows_k<K::Q5>(r, r0, r1, y);
    case DType::Q6_K:
      return rows_k<K::Q6>(r, r0, r1, y);
    case DType::IQ4_XS:
      return rows_k<K::IQ4XS>(r, r0, r1, y);
    default:
      return rows_generic(r, r0, r1, y);
  }
}

}  // namespace mcw::block_detail

#else

namespace mcw::block_detail {
void rows_avx2(const Rows& r, int64_t r0, int64_t r1, const Out& y) { rows_generic(r, r0, r1, y); }
}  // namespace mcw::block_detail

#endif
