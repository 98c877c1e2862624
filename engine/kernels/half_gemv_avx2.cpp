// AVX2 + FMA + F16C path of the 16-bit-weight small-m product: the tiling of the AVX-512
// path with 8-lane vectors. Functions carry the target attribute, so the file builds with
// the baseline flags and only runs when cpu_features() says so. AVX2 has no masked 16-bit
// load, so the last k mod 16 columns are summed in scalar code (never reading past a row).
#include "engine/kernels/half_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/core/half.h"
#include "engine/kernels/avx2_util.h"

namespace mcw::half_detail {
namespace {

enum class Fmt { BF16, F16 };

// 8 weights widened in registers (exact for both formats).
template <Fmt F>
MCW_AVX2_INLINE __m256 load_w(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (F == Fmt::BF16)
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  else
    return _mm256_cvtph_ps(h);
}

template <Fmt F>
inline float widen1(uint16_t h) {
  return F == Fmt::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// As in the AVX-512 path, with 16 registers: x rows in groups of up to 4, a GEMV with two
// chains per row over 16 columns, more x rows with one chain each (at most 8 in all).
template <int M>
constexpr int row_tile() {
  return M <= 2 ? 4 : 2;
}
template <int M>
constexpr int splits() {
  return M == 1 ? 2 : 1;
}

template <Fmt F, int RT, int M>
MCW_AVX2_INLINE void tile(const Rows& a, int64_t r, int64_t i0, const Out& y) {
  constexpr int S = splits<M>();
  const uint16_t* w[RT];
  for (int t = 0; t < RT; ++t) w[t] = a.w + (r + t) * a.ldw;
  const float* x[M];
  for (int i = 0; i < M; ++i) x[i] = a.x + (i0 + i) * a.ldx;
  __m256 acc[RT][M][S];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i)
      for (int s = 0; s < S; ++s) acc[t][i][s] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 * S <= a.k; p += 8 * S) {
    for (int t = 0; t < RT; ++t) {
      __m256 wv[S];
      for (int s = 0; s < S; ++s) wv[s] = load_w<F>(w[t] + p + 8 * s);
      for (int i = 0; i < M; ++i)
        for (int s = 0; s < S; ++s)
          acc[t][i][s] = _mm256_fmadd_ps(wv[s], _mm256_loadu_ps(x[i] + p + 8 * s), acc[t][i][s]);
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) {
      __m256 s = acc[t][i][0];
      for (int q = 1; q < S; ++q) s = _mm256_add_ps(s, acc[t][i][q]);
      float v = hsum(s);
      for (int64_t q = p; q < a.k; ++q) v += widen1<F>(w[t][q]) * x[i][q];
      y.store(i0 + i, r + t, v);
    }
}

template <Fmt F, int M>
MCW_AVX2 void rows_m(const Rows& a, int64_t r0, int64_t r1, int64_t i0, const Out& y) {
  constexpr int RT = row_tile<M>();
  int64_t r = r0;
  for (; r + RT <= r1; r += RT) tile<F, RT, M>(a, r, i0, y);
  for (; r < r1; ++r) tile<F, 1, M>(a, r, i0, y);
}

// x rows in groups of up to 4; the task's rows of W (tens of KiB) stay in cache between
// the groups.
template <Fmt F>
MCW_AVX2 void rows(const Rows& a, int64_t r0, int64_t r1, const Out& y) {
  for (int64_t i0 = 0; i0 < a.m; i0 += 4) {
    switch (a.m - i0) {
      case 1: rows_m<F, 1>(a, r0, r1, i0, y); break;
      case 2: rows_m<F, 2>(a, r0, r1, i0, y); break;
      case 3: rows_m<F, 3>(a, r0, r1, i0, y); break;
      default: rows_m<F, 4>(a, r0, r1, i0, y); break;
    }
  }
}

}  // namespace

const HalfGemvIsa& half_isa_avx2() {
  static const HalfGemvIsa isa{"avx2", rows<Fmt::BF16>, rows<Fmt::F16>};
  return isa;
}

}  // namespace mcw::half_detail

#else

namespace mcw::half_detail {
const HalfGemvIsa& half_isa_avx2() { return half_isa_generic(); }
}  // namespace mcw::half_detail

#endif
