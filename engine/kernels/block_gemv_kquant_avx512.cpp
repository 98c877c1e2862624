// The fused AVX-512 products for the K-quants (block_gemv.h): codes go from the weight's
// bytes straight into the dot products, never through memory, and the sub-block scales are
// applied in integers. Per super-block of 256 values and row of x:
//   s = Σ_v vpmaddwd(vpmaddubsw(u_v, q_v), scale_v)   (four vectors of 64 codes, int32)
//   y += d·dx·s  (− dmin·dx·Σ_g min_g·Σ q_g for the types with mins)
// with u the unsigned codes (<= 63: vpmaddubsw cannot saturate), q the activations (block
// 256, ggml's Q8_K) and the scales repeated over each group's 16-bit lanes. The same value
// as the unpacked path up to f32 rounding (the tests hold both to the f64 sum).
//
// Code order. Q4_K/Q5_K: a super-block's 128 nibble bytes load as two 64-byte vectors whose
// low nibbles are values 0-31 and 64-95 and high nibbles 32-63 and 96-127 (likewise for
// 128-255). Q2_K/Q3_K: each half's 32 bytes, loaded into both halves of a vector and shifted
// by two planes at once, give the same pairs of 32 values. The activations are stored once
// per product in that order (Int8Activations::q_order). Q6_K: the 64 low-nibble bytes of each
// half are values 0-63 in their low nibbles and 64-127 in their high ones: natural order.
// Codes with an offset (Q6_K: q − 32; Q3_K: q − 4) subtract offset·Σ_g scale_g·Σ q_g in the
// same int32 sum, from the activations' sums per 16.
#include "engine/core/kquant_blocks.h"
#include "engine/kernels/block_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/block_gemv_avx512_util.h"
#include "engine/kernels/block_gemv_kquant_scales.h"

namespace mcw::block_detail {
namespace {

// The pairs of 32-value pieces each vector of 64 codes holds, in q_order's order.
constexpr int kPieces[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};

// For a vector holding pieces (a, b): the 16-bit lanes' group of 16 (groups 2a, 2a+1, 2b,
// 2b+1) or of 32 (a, b).
MCW_BLOCK512_INLINE __m512i groups16_of(int v) {
  const int a = kPieces[v][0], b = kPieces[v][1];
  return quarters(2 * a, 2 * a + 1, 2 * b, 2 * b + 1);
}

enum class K { Q2, Q3, Q4, Q5, Q6 };

// One super-block's codes as four vectors (see the header for each type's order), its
// scales per 16-bit lane, and the terms outside the scaled sum.
struct SuperBlock {
  __m512i u[4], scale[4];
  float d, dmin;    // dmin: the mins' factor (Q2_K, Q4_K, Q5_K)
  __m256i mins16;   // per group of 16, int16 (Q2_K, Q4_K, Q5_K)
  __m256i scale16;  // per group of 16, int16 (Q3_K, Q6_K: the offset term)
};

template <K T>
MCW_BLOCK512_INLINE void load_block(const uint8_t* p, SuperBlock& b) {
  const __m512i nib = _mm512_set1_epi8(0x0f), two = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
  if constexpr (T == K::Q4 || T == K::Q5) {
    const auto* x = reinterpret_cast<const BlockQ4_K*>(p);  // d, dmin, scales: same in Q5_K
    const uint8_t* qs = T == K::Q5 ? reinterpret_cast<const BlockQ5_K*>(p)->qs : x->qs;
    b.d = _cvtsh_ss(x->d), b.dmin = _cvtsh_ss(x->dmin);
    const __m128i sm = k4_scales_mins(x->scales);
    const __m512i sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(sm));
    const __m128i mn = _mm_srli_si128(sm, 8);
    b.mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn, mn));  // each min for 2 groups
    const __m512i z0 = _mm512_loadu_si512(qs), z1 = _mm512_loadu_si512(qs + 64);
    b.u[0] = _mm512_and_si512(z0, nib), b.u[1] = _mm512_and_si512(_mm512_srli_epi16(z0, 4), nib);
    b.u[2] = _mm512_and_si512(z1, nib), b.u[3] = _mm512_and_si512(_mm512_srli_epi16(z1, 4), nib);
    if constexpr (T == K::Q5) {  // the fifth bit of piece j's value l: bit j of qh[l]
      const __m512i qh = twice(reinterpret_cast<const BlockQ5_K*>(p)->qh);
      for (int v = 0; v < 4; ++v)
        b.u[v] = _mm512_or_si512(
            b.u[v], _mm512_slli_epi16(bits_of(qh, halves(kPieces[v][0], kPieces[v][1]), one), 4));
    }
    for (int v = 0; v < 4; ++v)
      b.scale[v] = _mm512_permutexvar_epi16(halves(kPieces[v][0], kPieces[v][1]), sc);
  } else if constexpr (T == K::Q2 || T == K::Q3) {
    // Piece P = 4·half + plane: bits 2·plane of the half's 32 bytes (Q3_K: plus bit P of
    // hmask as the third bit).
    const uint8_t* qs;
    __m512i sc;
    if constexpr (T == K::Q2) {
      const auto* x = reinterpret_cast<const BlockQ2_K*>(p);
      qs = x->qs, b.d = _cvtsh_ss(x->d), b.dmin = _cvtsh_ss(x->dmin);
      const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x->scales));
      sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(s, _mm_set1_epi8(0x0f))));
      b.mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0x0f)));
    } else {
      const auto* x = reinterpret_cast<const BlockQ3_K*>(p);
      qs = x->qs, b.d = _cvtsh_ss(x->d), b.dmin = 0;
      b.scale16 = _mm256_cvtepi8_epi16(k3_scales(x->scales));
      sc = _mm512_castsi256_si512(b.scale16);
    }
    for (int v = 0; v < 4; ++v) {
      const int a = kPieces[v][0], c = kPieces[v][1];
      b.u[v] = bits_of(twice(qs + 32 * (a / 4)), halves(2 * (a % 4), 2 * (c % 4)), two);
      if constexpr (T == K::Q3) {
        const __m512i hm = twice(reinterpret_cast<const BlockQ3_K*>(p)->hmask);
        b.u[v] = _mm512_or_si512(b.u[v], _mm512_slli_epi16(bits_of(hm, halves(a, c), one), 2));
      }
      b.scale[v] = _mm512_permutexvar_epi16(groups16_of(v), sc);
    }
  } else {  // Q6_K
    const auto* x = reinterpret_cast<const BlockQ6_K*>(p);
    b.d = _cvtsh_ss(x->d), b.dmin = 0;
    b.scale16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x->scales)));
    const __m512i sc = _mm512_castsi256_si512(b.scale16);
    for (int h = 0; h < 2; ++h) {
      const __m512i l = _mm512_loadu_si512(x->ql + 64 * h), qh = twice(x->qh + 32 * h);
      b.u[2 * h] = _mm512_or_si512(_mm512_and_si512(l, nib),
                                   _mm512_slli_epi16(bits_of(qh, halves(0, 2), two), 4));
      b.u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), nib),
                                       _mm512_slli_epi16(bits_of(qh, halves(4, 6), two), 4));
    }
    for (int v = 0; v < 4; ++v) b.scale[v] = _mm512_permutexvar_epi16(quarters(4 * v, 4 * v + 1, 4 * v + 2, 4 * v + 3), sc);
  }
}

template <K T, int M>
MCW_BLOCK512 void rows_m(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  const int64_t blocks = r.k / kSuperBlock, bytes = dtype_info(r.type).block_bytes;
  constexpr bool kMins = T == K::Q2 || T == K::Q4 || T == K::Q5;
  constexpr int kOffsetShift = T == K::Q6 ? 5 : 2;  // Q6_K: −32, Q3_K: −4
  for (int64_t row = r0; row < r1; ++row) {
    const uint8_t* w = r.w + row * r.row_bytes;
    __m512 acc[M];
    __m256 mins[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps(), mins[i] = _mm256_setzero_ps();
    for (int64_t c = 0; c < blocks; ++c) {
      SuperBlock b;
      // Four super-blocks on (a few lines each; into the next row at the end): the weight
      // stream's loads otherwise stall the loop (as they did row_packed_gemv's).
      _mm_prefetch(reinterpret_cast<const char*>(w + (c + 4) * bytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w + (c + 4) * bytes + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w + (c + 4) * bytes + 128), _MM_HINT_T0);
      load_block<T>(w + c * bytes, b);
      for (int i = 0; i < M; ++i) {
        const Int8Activations& x = r.x[i];
        const int8_t* q = (T == K::Q6 ? x.q.data() : x.q_order.data()) + c * kSuperBlock;
        __m512i s = scaled_dot(b.u, q, b.scale);
        const __m256i qsum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qsum16.data() + 16 * c));
        const float dx = x.d[size_t(c)];
        if constexpr (kMins) {
          mins[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(b.mins16, qsum)),
                                    _mm256_set1_ps(-b.dmin * dx), mins[i]);
        } else {
          const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(b.scale16, qsum), kOffsetShift);
          s = _mm512_sub_epi32(s, _mm512_zextsi256_si512(off));
        }
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(b.d * dx), acc[i]);
      }
    }
    for (int i = 0; i < M; ++i) y.store(i, row, _mm512_reduce_add_ps(acc[i]) + sum256(mins[i]));
  }
}

template <K T>
void rows_k(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  with_m(r.m, [&](auto m) { rows_m<T, decltype(m)::value>(r, r0, r1, y); });
}

}  // namespace

void rows_kquant_avx512(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  switch (r.type) {
    case DType::Q2_K: return rows_k<K::Q2>(r, r0, r1, y);
    case DType::Q3_K: return rows_k<K::Q3>(r, r0, r1, y);
    case DType::Q4_K: return rows_k<K::Q4>(r, r0, r1, y);
    case DType::Q5_K: return rows_k<K::Q5>(r, r0, r1, y);
    case DType::Q6_K: return rows_k<K::Q6>(r, r0, r1, y);
    default: return rows_generic(r, r0, r1, y);
  }
}

}  // namespace mcw::block_detail

#else

namespace mcw::block_detail {
void rows_kquant_avx512(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  rows_generic(r, r0, r1, y);
}
}  // namespace mcw::block_detail

#endif
