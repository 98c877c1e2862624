// AVX-512 path of the 16-bit-weight small-m product. Functions carry the target attribute,
// so the file builds with the baseline flags and only runs when cpu_features() says so.
//
// 16 weights are loaded as 256 bits and widened in registers: bf16 by a zero-extend and a
// 16-bit shift (bf16 is the top half of an f32), f16 by vcvtph2ps; both exact. A tile of
// RT rows of W × all M rows of x keeps 8 to 16 accumulator chains in flight, enough to hide
// the FMA latency. The last k mod 32 columns go through masked loads, so
// no row is read past its end (a mapped file may end there).
#include "engine/kernels/half_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/simd.h"

#define MCW_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define MCW_AVX512_INLINE MCW_AVX512 inline __attribute__((always_inline))

namespace mcw::half_detail {
namespace {

enum class Fmt { BF16, F16 };

MCW_AVX512_INLINE __mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? __mmask16(0xffff) : __mmask16((1u << remaining) - 1);
}

template <Fmt F>
MCW_AVX512_INLINE __m512 widen(__m256i h) {
  if constexpr (F == Fmt::BF16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  else
    return _mm512_cvtph_ps(h);
}

template <Fmt F>
MCW_AVX512_INLINE __m512 load_w(const uint16_t* p) {
  return widen<F>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <Fmt F>
MCW_AVX512_INLINE __m512 load_w(const uint16_t* p, __mmask16 m) {
  return widen<F>(_mm256_maskz_loadu_epi16(m, p));
}

// Rows of W per tile for M rows of x, and accumulators per (row, x row): a GEMV keeps two
// chains per row over 32 columns (8 in all); more rows of x bring their own chains, and the
// tile spans fewer W rows once M·RT reaches 16 (of 32 registers). Every weight vector then
// feeds M FMAs and every x vector RT, so loads stay below the FMA count.
template <int M>
constexpr int row_tile() {
  return M <= 4 ? 4 : 2;
}
template <int M>
constexpr int splits() {
  return M == 1 ? 2 : 1;
}

template <Fmt F, int RT, int M>
MCW_AVX512_INLINE void tile(const Rows& a, int64_t r, const Out& y) {
  constexpr int S = splits<M>();
  const uint16_t* w[RT];
  for (int t = 0; t < RT; ++t) w[t] = a.w + (r + t) * a.ldw;
  const float* x[M];
  for (int i = 0; i < M; ++i) x[i] = a.x + i * a.ldx;
  __m512 acc[RT][M][S];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i)
      for (int s = 0; s < S; ++s) acc[t][i][s] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 16 * S <= a.k; p += 16 * S) {
    for (int t = 0; t < RT; ++t) {
      __m512 wv[S];
      for (int s = 0; s < S; ++s) wv[s] = load_w<F>(w[t] + p + 16 * s);
      for (int i = 0; i < M; ++i)
        for (int s = 0; s < S; ++s)
          acc[t][i][s] = _mm512_fmadd_ps(wv[s], _mm512_loadu_ps(x[i] + p + 16 * s), acc[t][i][s]);
    }
  }
  for (; p < a.k; p += 16) {
    const __mmask16 m = tail_mask(a.k - p);
    for (int t = 0; t < RT; ++t) {
      const __m512 wv = load_w<F>(w[t] + p, m);
      for (int i = 0; i < M; ++i)
        acc[t][i][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x[i] + p), acc[t][i][0]);
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) {
      __m512 v = acc[t][i][0];
      for (int s = 1; s < S; ++s) v = _mm512_add_ps(v, acc[t][i][s]);
      y.store(i, r + t, _mm512_reduce_add_ps(v));
    }
}

template <Fmt F, int M>
MCW_AVX512 void rows_m(const Rows& a, int64_t r0, int64_t r1, const Out& y) {
  constexpr int RT = row_tile<M>();
  int64_t r = r0;
  for (; r + RT <= r1; r += RT) tile<F, RT, M>(a, r, y);
  for (; r < r1; ++r) tile<F, 1, M>(a, r, y);
}

// All m (<= 8) rows of x in one pass: each weight is loaded once.
template <Fmt F>
MCW_AVX512 void rows(const Rows& a, int64_t r0, int64_t r1, const Out& y) {
  switch (a.m) {
    case 1: rows_m<F, 1>(a, r0, r1, y); break;
    case 2: rows_m<F, 2>(a, r0, r1, y); break;
    case 3: rows_m<F, 3>(a, r0, r1, y); break;
    case 4: rows_m<F, 4>(a, r0, r1, y); break;
    case 5: rows_m<F, 5>(a, r0, r1, y); break;
    case 6: rows_m<F, 6>(a, r0, r1, y); break;
    case 7: rows_m<F, 7>(a, r0, r1, y); break;
    default: rows_m<F, 8>(a, r0, r1, y); break;
  }
}

}  // namespace

const HalfGemvIsa& half_isa_avx512() {
  static const HalfGemvIsa isa{"avx512", rows<Fmt::BF16>, rows<Fmt::F16>};
  return isa;
}

}  // namespace mcw::half_detail

#else

namespace mcw::half_detail {
const HalfGemvIsa& half_isa_avx512() { return half_isa_generic(); }
}  // namespace mcw::half_detail

#endif
