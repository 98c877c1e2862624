// AVX-512 VNNI integer-dot path of the Affine small-m product (packed_gemv_isa.h:
// affine_i8), for CPUs with AVX-512 VNNI (Intel Xeon since Cascade Lake, AMD Zen 4/5). The
// AVX2 path (packed_gemv_i8_256.inc) multiplies 32 codes per vpmaddubsw and needs a second
// instruction to widen; here one vpdpbusd takes two units (64 codes) and adds the products
// straight into 32-bit sums, and 8-bit codes go in unsigned as they are stored (vpdpbusd
// multiplies u8 by s8 without saturating, so the AVX2 path's q − 128 and sign trick, and its
// 128·scale offset, are not needed).
//
// Two units' codes come out of their bytes in slot order with a lane permutation, a
// per-lane shift and a mask, so the activations keep the order the AVX2 path uses. Blocks
// of an odd number of units (groups of 32 slots, 96, ...) go to the AVX2 path's vpdpbusd
// on 256-bit registers (packed_gemv_i8_vnni256.cpp).
// Functions carry the target attribute, so the file builds with the baseline flags and only
// runs when cpu_features() reports AVX-512 VNNI.
#include <algorithm>
#include <cstring>

#include "engine/kernels/packed_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/simd.h"

#define MCW_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define MCW_VNNI_INLINE MCW_VNNI inline __attribute__((always_inline))

namespace mcw::packed_detail {
namespace {

// Units u and u + 1 (p: unit u) as 64 bytes in slot order.
template <int Bits>
MCW_VNNI_INLINE __m512i pair_codes(const uint8_t* p) {
  if constexpr (Bits == 8) {
    return _mm512_loadu_si512(p);
  } else if constexpr (Bits == 4) {
    // 128-bit lanes u, u, u+1, u+1 (16 bytes each); the second of each pair shifted by 4.
    const __m512i v =
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    const __m512i d = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), v);
    return _mm512_and_si512(_mm512_srlv_epi64(d, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)),
                            _mm512_set1_epi8(0x0f));
  } else if constexpr (Bits == 2) {  // 64-bit lane k of a unit: codes 8k..8k+7 at bits 2k
    const __m512i d = _mm512_permutexvar_epi64(
        _mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0),
        _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    return _mm512_and_si512(_mm512_srlv_epi64(d, _mm512_set_epi64(6, 4, 2, 0, 6, 4, 2, 0)),
                            _mm512_set1_epi8(3));
  } else {  // 3-bit: a 2-bit unit's 8 bytes, then bit 2 of each code in a u32
    int64_t a, b;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + 12, 8);
    const __m512i d = _mm512_permutexvar_epi64(_mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0),
                                               _mm512_castsi128_si512(_mm_set_epi64x(b, a)));
    const __m512i v = _mm512_and_si512(
        _mm512_srlv_epi64(d, _mm512_set_epi64(6, 4, 2, 0, 6, 4, 2, 0)), _mm512_set1_epi8(3));
    uint32_t h0, h1;
    std::memcpy(&h0, p + 8, 4);
    std::memcpy(&h1, p + 20, 4);
    return _mm512_mask_add_epi8(v, __mmask64(h0) | __mmask64(h1) << 32, v, _mm512_set1_epi8(4));
  }
}

// A software prefetch 512 bytes ahead, once per cache line of a row, helped 8- and 3-bit
// rows and slowed 4- and 2-bit ones (AMD Zen 5, docs/PERFORMANCE.md), whose loads the
// hardware prefetchers follow alone.
constexpr int64_t kPrefetchBytes = 512;
template <int Bits>
constexpr bool kPrefetch = Bits == 8 || Bits == 3;

// Σ a[k]·b[k] over k < n, in 16 lanes.
MCW_VNNI_INLINE __m512 offset_dot(const float* a, const float* b, int64_t n) {
  __m512 s = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    s = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), s);
  const __mmask16 tail = __mmask16((1u << (n - k)) - 1);
  return _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + k), _mm512_maskz_loadu_ps(tail, b + k), s);
}

template <int M>
constexpr int row_tile() {
  return M == 1 ? 4 : M == 2 ? 2 : 1;
}

template <int Bits, int RT, int M, int Pairs>
MCW_VNNI_INLINE void tile(const AffineView& w, const XInt8& x, int64_t r, int64_t stride,
                          int64_t i0, const YOut& y) {
  constexpr int64_t ub = 4 * Bits;
  const int64_t block_units = x.x[0].block / kUnit;
  const uint8_t* row[RT];
  for (int t = 0; t < RT; ++t) row[t] = w.codes + (r + t * stride) * w.row_bytes;
  // The rows of x as plain pointers, so that nothing in the loops reloads them.
  const int8_t* xq[M];
  const float* xd[M];
  for (int i = 0; i < M; ++i) xq[i] = x.x[i0 + i].q.data(), xd[i] = x.x[i0 + i].d.data();
  __m512 acc[RT][M];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i] = _mm512_setzero_ps();
  int64_t b = 0;  // the activation block
  for (int64_t g = 0; g < w.groups; ++g) {
    float scale[RT];
    for (int t = 0; t < RT; ++t) scale[t] = w.scale[(r + t * stride) * w.groups + g];
    // Blocks divide groups: block b of the row starts at unit b·block_units (no division
    // per block: a 64-bit idiv was a tenth of this loop's time).
    const int64_t g_end = (g + 1) * w.units_per_group;
    for (int64_t u0 = g * w.units_per_group; u0 < g_end; u0 += block_units, ++b) {
      __m512i s[RT][M];
      for (int t = 0; t < RT; ++t)
        for (int i = 0; i < M; ++i) s[t][i] = _mm512_setzero_si512();
      const int64_t u1 = u0 + (Pairs ? 2 * Pairs : block_units);  // Pairs: 0 = run time
      for (int64_t u = u0; u < u1; u += 2)
        for (int t = 0; t < RT; ++t) {
          if (kPrefetch<Bits> && (u * ub) % 64 < 2 * ub)
            _mm_prefetch(reinterpret_cast<const char*>(row[t] + u * ub + kPrefetchBytes),
                         _MM_HINT_T0);
          const __m512i c = pair_codes<Bits>(row[t] + u * ub);
          for (int i = 0; i < M; ++i)
            s[t][i] = _mm512_dpbusd_epi32(s[t][i], c, _mm512_loadu_si512(xq[i] + u * kUnit));
        }
      for (int t = 0; t < RT; ++t)
        for (int i = 0; i < M; ++i) {
          const float f = scale[t] * xd[i][b];
          acc[t][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t][i]), _mm512_set1_ps(f), acc[t][i]);
        }
    }
  }
  // The offsets' share, Σ_g offset_g·Σx̂_g, as one vector dot per row (was a scalar FMA per
  // group and row inside the loop).
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) {
      const __m512 corr =
          offset_dot(w.offset + (r + t * stride) * w.groups, x.sum + (i0 + i) * x.ldsum, w.groups);
      y.store(i0 + i, r + t * stride, _mm512_reduce_add_ps(_mm512_add_ps(acc[t][i], corr)));
    }
}

template <int Bits, int M, int Pairs>
MCW_VNNI void rows_pairs(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, int64_t i0,
                         const YOut& y) {
  constexpr int RT = row_tile<M>();
  const int64_t q = row_stride(r0, r1, RT);
  for (int64_t k = 0; k < q; ++k) tile<Bits, RT, M, Pairs>(w, x, r0 + k, q, i0, y);
  for (int64_t r = r0 + RT * q; r < r1; ++r) tile<Bits, 1, M, Pairs>(w, x, r, 0, i0, y);
}

// Blocks of 4 and 8 units (groups of 128 slots, and of 256 or more) with their pair count
// known at compile time: unrolled, the sums stay in registers (a run-time count made GCC
// copy and spill them; q4 g128 went from 45–50 to 37–40 µs on one thread).
template <int Bits, int M>
void rows_m(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, int64_t i0,
            const YOut& y) {
  switch (x.x[0].block / kUnit) {
    case 4:
      return rows_pairs<Bits, M, 2>(w, x, r0, r1, i0, y);
    case 8:
      return rows_pairs<Bits, M, 4>(w, x, r0, r1, i0, y);
    default:
      return rows_pairs<Bits, M, 0>(w, x, r0, r1, i0, y);
  }
}

// Up to 8 rows of x a pass (each pair of units decoded once for all of them): 32 vector
// registers hold the 16 accumulators.
template <int Bits>
void rows_bits(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y) {
  for (int64_t i0 = 0; i0 < x.m; i0 += 8) {
    with_m(std::min<int64_t>(8, x.m - i0),
           [&](auto M) { rows_m<Bits, decltype(M)::value>(w, x, r0, r1, i0, y); });
  }
}

}  // namespace

void affine_i8_avx512_vnni(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1,
                           const YOut& y) {
  if (x.m > 0 && (x.x[0].block / kUnit) % 2) return affine_i8_avx512vl_vnni(w, x, r0, r1, y);
  switch (w.bits) {
    case 2:
      return rows_bits<2>(w, x, r0, r1, y);
    case 3:
      return rows_bits<3>(w, x, r0, r1, y);
    case 4:
      return rows_bits<4>(w, x, r0, r1, y);
    default:
      return rows_bits<8>(w, x, r0, r1, y);
  }
}

}  // namespace mcw::packed_detail

#else

namespace mcw::packed_detail {
void affine_i8_avx512_vnni(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1,
                           const YOut& y) {
  affine_i8_generic(w, x, r0, r1, y);
}
}  // namespace mcw::packed_detail

#endif
