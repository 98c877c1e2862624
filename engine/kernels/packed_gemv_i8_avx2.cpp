// AVX2 integer-dot path of the Affine small-m product (packed_gemv_isa.h: affine_i8): the
// activations are int8 (quantised once per product), the codes go from their units into
// vpmaddubsw as bytes, and f32 arithmetic is left with one FMA per activation block (a
// group of up to 256 slots) instead of a widen, a convert and an FMA per 8 weights.
//
// A unit's 32 codes come out of its bytes in slot order with one or two instructions
// (packed_gemv_isa.h: nibbles split by a shift, crumbs by a per-lane 64-bit shift, the
// 3-bit plane by a byte mask), so the activations need no reordering. Codes of 2-4 bits
// are unsigned and small, so vpmaddubsw's 16-bit pair sums (<= 2·15·127) add up over a
// whole activation block before one vpmaddwd widens them. 8-bit codes are taken as
// c = q − 128 (signed) and multiplied by sign-moving (|c| times x̂·sign(c), as ggml does
// for Q8_0: |c| <= 128, so a pair sum stays under 2^15); their offset grows by 128·scale.
// Functions carry the target attribute, so the file builds with the baseline flags and
// only runs when cpu_features() says so.
#include <cstring>

#include "engine/kernels/packed_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"

namespace mcw::packed_detail {
namespace {

// A unit's 32 codes as bytes in slot order; 8-bit codes as q − 128.
template <int Bits>
MCW_AVX2_INLINE __m256i unit_codes(const uint8_t* p) {
  if constexpr (Bits == 8) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                            _mm256_set1_epi8(char(0x80)));
  } else if constexpr (Bits == 4) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0f));
  } else {  // 64-bit lane k holds codes 8k..8k+7 at bits 2k of each byte
    int64_t u;
    std::memcpy(&u, p, 8);
    __m256i v = _mm256_srlv_epi64(_mm256_set1_epi64x(u), _mm256_set_epi64x(6, 4, 2, 0));
    v = _mm256_and_si256(v, _mm256_set1_epi8(3));
    if constexpr (Bits == 3) {
      uint32_t h;
      std::memcpy(&h, p + 8, 4);
      v = _mm256_or_si256(v, _mm256_and_si256(bit_bytes(h), _mm256_set1_epi8(4)));
    }
    return v;
  }
}

// 16 pair sums of codes × activations.
template <int Bits>
MCW_AVX2_INLINE __m256i pair_dot(__m256i c, const int8_t* q) {
  const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  if constexpr (Bits == 8) return _mm256_maddubs_epi16(_mm256_sign_epi8(c, c), _mm256_sign_epi8(x, c));
  return _mm256_maddubs_epi16(c, x);
}

constexpr int64_t kPrefetchBytes = 512;

template <int M>
constexpr int row_tile() {
  return M == 1 ? 4 : M == 2 ? 2 : 1;
}

template <int Bits, int RT, int M>
MCW_AVX2_INLINE void tile(const AffineView& w, const XInt8& x, int64_t r, int64_t i0,
                        const YOut& y) {
  constexpr int64_t ub = 4 * Bits;
  const int64_t block_units = x.x[0].block / kUnit;
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* row[RT];
  for (int t = 0; t < RT; ++t) row[t] = w.codes + (r + t) * w.row_bytes;
  __m256 acc[RT][M];
  float corr[RT][M];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i] = _mm256_setzero_ps(), corr[t][i] = 0;
  for (int64_t g = 0; g < w.groups; ++g) {
    float scale[RT];
    for (int t = 0; t < RT; ++t) {
      const int64_t k = (r + t) * w.groups + g;
      scale[t] = w.scale[k];
      const float offset = Bits == 8 ? w.offset[k] + 128.0f * w.scale[k] : w.offset[k];
      for (int i = 0; i < M; ++i) corr[t][i] += offset * x.sum[(i0 + i) * x.ldsum + g];
    }
    const int64_t g_end = (g + 1) * w.units_per_group;
    for (int64_t u0 = g * w.units_per_group; u0 < g_end; u0 += block_units) {
      __m256i s[RT][M];
      for (int t = 0; t < RT; ++t)
        for (int i = 0; i < M; ++i) s[t][i] = _mm256_setzero_si256();
      for (int64_t u = u0; u < u0 + block_units; ++u)
        for (int t = 0; t < RT; ++t) {
          _mm_prefetch(reinterpret_cast<const char*>(row[t] + u * ub + kPrefetchBytes),
                       _MM_HINT_T0);
          const __m256i c = unit_codes<Bits>(row[t] + u * ub);
          for (int i = 0; i < M; ++i) {
            const __m256i p = pair_dot<Bits>(c, x.x[i0 + i].q.data() + u * kUnit);
            // 2-4 bits: 16-bit sums of a block (<= 8 units) stay under 2^15.
            s[t][i] = Bits == 8 ? _mm256_add_epi32(s[t][i], _mm256_madd_epi16(p, ones))
                                : _mm256_add_epi16(s[t][i], p);
          }
        }
      const int64_t b = u0 / block_units;
      for (int t = 0; t < RT; ++t)
        for (int i = 0; i < M; ++i) {
          const __m256i s32 = Bits == 8 ? s[t][i] : _mm256_madd_epi16(s[t][i], ones);
          const float f = scale[t] * x.x[i0 + i].d[size_t(b)];
          acc[t][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), _mm256_set1_ps(f), acc[t][i]);
        }
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) y.store(i0 + i, r + t, hsum(acc[t][i]) + corr[t][i]);
}

template <int Bits, int M>
MCW_AVX2 void rows_m(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, int64_t i0,
                   const YOut& y) {
  constexpr int RT = row_tile<M>();
  int64_t r = r0;
  for (; r + RT <= r1; r += RT) tile<Bits, RT, M>(w, x, r, i0, y);
  for (; r < r1; ++r) tile<Bits, 1, M>(w, x, r, i0, y);
}

template <int Bits>
void rows_bits(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y) {
  for (int64_t i0 = 0; i0 < x.m; i0 += 4) {
    switch (x.m - i0) {
      case 1: rows_m<Bits, 1>(w, x, r0, r1, i0, y); break;
      case 2: rows_m<Bits, 2>(w, x, r0, r1, i0, y); break;
      case 3: rows_m<Bits, 3>(w, x, r0, r1, i0, y); break;
      default: rows_m<Bits, 4>(w, x, r0, r1, i0, y); break;
    }
  }
}

}  // namespace

void affine_i8_avx2(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y) {
  switch (w.bits) {
    case 2: return rows_bits<2>(w, x, r0, r1, y);
    case 3: return rows_bits<3>(w, x, r0, r1, y);
    case 4: return rows_bits<4>(w, x, r0, r1, y);
    default: return rows_bits<8>(w, x, r0, r1, y);
  }
}

}  // namespace mcw::packed_detail

#else

namespace mcw::packed_detail {
void affine_i8_avx2(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y) {
  affine_i8_generic(w, x, r0, r1, y);
}
}  // namespace mcw::packed_detail

#endif
