// The fused AVX-512 products for the K-quants GGUF hubs ship most (Q4_K, Q5_K, Q6_K; a
// Q4_K_M file is Q4_K with some Q6_K): codes go from the weight's bytes straight into the
// dot products, never through memory, and the sub-block scales are applied in integers.
//
// Q4_K / Q5_K: a super-block's 128 nibble bytes load as two 64-byte vectors; the low nibbles of the
// first are values 0-31 and 64-95, its high nibbles 32-63 and 96-127 (the second vector
// likewise for 128-255). The activations are stored once per product in that order
// (Int8Activations::q_k4), so each nibble vector meets its activations with one
// vpmaddubsw (u8 × s8 → pairs of 16-bit sums: at most 2·31·127, no saturation), one
// vpmaddwd by the 6-bit scale of each 32 values (→ 32-bit), and one add. Per super-block:
// Σ_j sc_j·Σ u·q in int32, times d·dx in f32; the mins enter as −dmin·dx·Σ_j mn_j·Σ q_j
// from the activations' sums per 32. The same value as the unpacked path up to f32
// rounding (the tests hold both to the f64 sum).
//
// Q6_K: the 64 low-nibble bytes of each half (128 values) are values 0-63 in their low
// nibbles and 64-127 in their high ones, so the activations need no reordering; each 16
// values have an int8 scale, and the −32 of every code is −32·Σ_g sc_g·Σ q_g, from the
// activations' sums per 16, subtracted in the same int32 sum.
#include <cstring>

#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"
#include "engine/kernels/block_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/simd.h"

#define MCW_K4 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define MCW_K4_INLINE MCW_K4 inline __attribute__((always_inline))

namespace mcw::block_detail {
namespace {

// Scales (bytes 0-7) and mins (bytes 8-15) of the eight sub-blocks from their 12 packed
// bytes (kquant_scale_min's layout).
MCW_K4_INLINE __m128i k4_scales_mins(const uint8_t* packed) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
  const uint32_t sc_lo = w[0] & low6, sc_hi = (w[2] & low4) | (((w[0] >> 6) & top2) << 4);
  const uint32_t mn_lo = w[1] & low6, mn_hi = ((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4);
  return _mm_set_epi32(int(mn_hi), int(mn_lo), int(sc_hi), int(sc_lo));
}

// 16-bit lanes 0-15 from sub-block a's scale, 16-31 from b's.
MCW_K4_INLINE __m512i halves(int a, int b) {
  return _mm512_inserti64x4(_mm512_set1_epi16(short(a)), _mm256_set1_epi16(short(b)), 1);
}

MCW_K4_INLINE float sum128(__m128 v) {
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

template <bool kFive, int M>
MCW_K4 void rows_m(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  const int64_t stride = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  const int64_t blocks = r.k / kSuperBlock;
  const __m512i nib = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
  // Which scale each 16-bit lane of a nibble vector takes (see halves()), and for Q5_K the
  // qh bit of each of its halves: vector v covers sub-blocks order[v][0] and order[v][1].
  const __m512i scale_idx[4] = {halves(0, 2), halves(1, 3), halves(4, 6), halves(5, 7)};
  for (int64_t row = r0; row < r1; ++row) {
    const uint8_t* w = r.w + row * r.row_bytes;
    __m512 acc[M];
    __m128 mins[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps(), mins[i] = _mm_setzero_ps();
    for (int64_t c = 0; c < blocks; ++c) {
      const auto* x = reinterpret_cast<const BlockQ4_K*>(w + c * stride);  // d, dmin, scales
      const uint8_t* qs = kFive ? reinterpret_cast<const BlockQ5_K*>(x)->qs : x->qs;
      const float d = _cvtsh_ss(x->d), dmin = _cvtsh_ss(x->dmin);
      const __m128i sm = k4_scales_mins(x->scales);
      const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(sm));
      const __m128i mn16 = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
      const __m512i z0 = _mm512_loadu_si512(qs), z1 = _mm512_loadu_si512(qs + 64);
      __m512i u[4] = {_mm512_and_si512(z0, nib), _mm512_and_si512(_mm512_srli_epi16(z0, 4), nib),
                      _mm512_and_si512(z1, nib), _mm512_and_si512(_mm512_srli_epi16(z1, 4), nib)};
      if constexpr (kFive) {
        // Value l of sub-block j has its fifth bit at bit j of qh[l]: vector v's halves take
        // bits order[v] of the same 32 qh bytes.
        const __m512i qh = _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const BlockQ5_K*>(x)->qh)));
        static constexpr int kBits[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
        for (int v = 0; v < 4; ++v) {
          const __m512i shift = halves(kBits[v][0], kBits[v][1]);
          const __m512i bit = _mm512_and_si512(_mm512_srlv_epi16(qh, shift), one);
          u[v] = _mm512_or_si512(u[v], _mm512_slli_epi16(bit, 4));
        }
      }
      __m512i sc[4];
      for (int v = 0; v < 4; ++v) sc[v] = _mm512_permutexvar_epi16(scale_idx[v], sc16);
      for (int i = 0; i < M; ++i) {
        const int8_t* q = r.x[i].q_k4.data() + c * kSuperBlock;
        __m512i s = _mm512_setzero_si512();
        for (int v = 0; v < 4; ++v) {
          const __m512i p = _mm512_maddubs_epi16(u[v], _mm512_loadu_si512(q + 64 * v));
          s = _mm512_add_epi32(s, _mm512_madd_epi16(p, sc[v]));
        }
        const float dx = r.x[i].d[size_t(c)];
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d * dx), acc[i]);
        const __m128i bs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r.x[i].sum32.data() + 8 * c));
        mins[i] = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_madd_epi16(mn16, bs)), _mm_set1_ps(-dmin * dx),
                               mins[i]);
      }
    }
    for (int i = 0; i < M; ++i) y.store(i, row, _mm512_reduce_add_ps(acc[i]) + sum128(mins[i]));
  }
}

template <int M>
MCW_K4 void rows_q6k(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  const int64_t blocks = r.k / kSuperBlock;
  const __m512i nib = _mm512_set1_epi8(0x0f), three = _mm512_set1_epi8(3);
  // Vector v (values 64v..64v+63) takes the scales of groups 4v..4v+3, each over 8 lanes.
  __m512i scale_idx[4];
  for (int v = 0; v < 4; ++v)
    scale_idx[v] = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_set_epi16(
            short(4 * v + 1), short(4 * v + 1), short(4 * v + 1), short(4 * v + 1),
            short(4 * v + 1), short(4 * v + 1), short(4 * v + 1), short(4 * v + 1), short(4 * v),
            short(4 * v), short(4 * v), short(4 * v), short(4 * v), short(4 * v), short(4 * v),
            short(4 * v))),
        _mm256_set_epi16(short(4 * v + 3), short(4 * v + 3), short(4 * v + 3), short(4 * v + 3),
                         short(4 * v + 3), short(4 * v + 3), short(4 * v + 3), short(4 * v + 3),
                         short(4 * v + 2), short(4 * v + 2), short(4 * v + 2), short(4 * v + 2),
                         short(4 * v + 2), short(4 * v + 2), short(4 * v + 2), short(4 * v + 2)),
        1);
  const __m512i low_bits = halves(0, 2), high_bits = halves(4, 6);  // qh bits of each half
  for (int64_t row = r0; row < r1; ++row) {
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(r.w + row * r.row_bytes);
    __m512 acc[M];
    for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t c = 0; c < blocks; ++c) {
      const BlockQ6_K& x = blk[c];
      const float d = _cvtsh_ss(x.d);
      const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales)));
      const __m512i sc16 = _mm512_castsi256_si512(sc);
      __m512i u[4], scv[4];
      for (int h = 0; h < 2; ++h) {
        const __m512i l = _mm512_loadu_si512(x.ql + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * h)));
        const __m512i hl = _mm512_and_si512(_mm512_srlv_epi16(qh, low_bits), three);
        const __m512i hh = _mm512_and_si512(_mm512_srlv_epi16(qh, high_bits), three);
        u[2 * h] = _mm512_or_si512(_mm512_and_si512(l, nib), _mm512_slli_epi16(hl, 4));
        u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), nib),
                                       _mm512_slli_epi16(hh, 4));
      }
      for (int v = 0; v < 4; ++v) scv[v] = _mm512_permutexvar_epi16(scale_idx[v], sc16);
      for (int i = 0; i < M; ++i) {
        const int8_t* q = r.x[i].q.data() + c * kSuperBlock;
        __m512i s = _mm512_setzero_si512();
        for (int v = 0; v < 4; ++v) {
          const __m512i p = _mm512_maddubs_epi16(u[v], _mm512_loadu_si512(q + 64 * v));
          s = _mm512_add_epi32(s, _mm512_madd_epi16(p, scv[v]));
        }
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.x[i].qsum16.data() + 16 * c));
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc, bs), 5);  // 32·Σ sc·Σ q
        s = _mm512_sub_epi32(s, _mm512_zextsi256_si512(off));
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d * r.x[i].d[size_t(c)]), acc[i]);
      }
    }
    for (int i = 0; i < M; ++i) y.store(i, row, _mm512_reduce_add_ps(acc[i]));
  }
}

template <bool kFive>
MCW_K4 void rows_k(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  switch (r.m) {
    case 1: return rows_m<kFive, 1>(r, r0, r1, y);
    case 2: return rows_m<kFive, 2>(r, r0, r1, y);
    case 3: return rows_m<kFive, 3>(r, r0, r1, y);
    case 4: return rows_m<kFive, 4>(r, r0, r1, y);
    case 5: return rows_m<kFive, 5>(r, r0, r1, y);
    case 6: return rows_m<kFive, 6>(r, r0, r1, y);
    case 7: return rows_m<kFive, 7>(r, r0, r1, y);
    default: return rows_m<kFive, 8>(r, r0, r1, y);
  }
}

}  // namespace

void rows_kquant_avx512(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  if (r.type == DType::Q6_K) {
    switch (r.m) {
      case 1: return rows_q6k<1>(r, r0, r1, y);
      case 2: return rows_q6k<2>(r, r0, r1, y);
      case 3: return rows_q6k<3>(r, r0, r1, y);
      case 4: return rows_q6k<4>(r, r0, r1, y);
      case 5: return rows_q6k<5>(r, r0, r1, y);
      case 6: return rows_q6k<6>(r, r0, r1, y);
      case 7: return rows_q6k<7>(r, r0, r1, y);
      default: return rows_q6k<8>(r, r0, r1, y);
    }
  }
  return r.type == DType::Q5_K ? rows_k<true>(r, r0, r1, y) : rows_k<false>(r, r0, r1, y);
}

}  // namespace mcw::block_detail

#else

namespace mcw::block_detail {
void rows_kquant_avx512(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  block_isa_generic().rows(r, r0, r1, y);
}
}  // namespace mcw::block_detail

#endif
