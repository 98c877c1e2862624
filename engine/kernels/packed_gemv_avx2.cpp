// AVX2 + FMA + F16C path of the packed small-m products (the same tiling as the AVX-512
// path with 8-lane vectors). Functions carry the target attribute, so the file builds with
// the baseline flags and only runs when cpu_features() says so.
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/packed_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"

namespace mcw::packed_detail {
namespace {

MCW_AVX2_INLINE __m256 widen(__m128i bytes) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}

// Codes 8k..8k+7 of a unit into f[k].
template <int Bits>
MCW_AVX2_INLINE void expand(const uint8_t* p, __m256 (&f)[4]) {
  if constexpr (Bits == 8) {
    for (int k = 0; k < 4; ++k)
      f[k] = widen(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * k)));
    return;
  } else {
    __m128i a, b;  // codes 0..15 and 16..31 as bytes
    if constexpr (Bits == 4) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const __m128i low = _mm_set1_epi8(0x0f);
      a = _mm_and_si128(v, low);
      b = _mm_and_si128(_mm_srli_epi16(v, 4), low);
    } else {
      int64_t u;
      std::memcpy(&u, p, 8);
      const __m128i v = _mm_set1_epi64x(u), low = _mm_set1_epi8(0x03);
      a = _mm_and_si128(_mm_srlv_epi64(v, _mm_set_epi64x(2, 0)), low);
      b = _mm_and_si128(_mm_srlv_epi64(v, _mm_set_epi64x(6, 4)), low);
    }
    __m256i i[4] = {_mm256_cvtepu8_epi32(a), _mm256_cvtepu8_epi32(_mm_srli_si128(a, 8)),
                    _mm256_cvtepu8_epi32(b), _mm256_cvtepu8_epi32(_mm_srli_si128(b, 8))};
    if constexpr (Bits == 3) {
      uint32_t h;
      std::memcpy(&h, p + 8, 4);
      const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0), one = _mm256_set1_epi32(1);
      for (int k = 0; k < 4; ++k) {
        const __m256i bit =
            _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(h >> (8 * k))), lane), one);
        i[k] = _mm256_add_epi32(i[k], _mm256_slli_epi32(bit, 2));
      }
    }
    for (int k = 0; k < 4; ++k) f[k] = _mm256_cvtepi32_ps(i[k]);
  }
}

template <int M>
constexpr int row_tile() {
  return M == 1 ? 4 : M == 2 ? 2 : 1;
}

template <int Bits, int RT, int M>
MCW_AVX2_INLINE void affine_tile(const AffineView& w, const XRows& x, int64_t r, int64_t stride,
                                 int64_t i0, const YOut& y) {
  constexpr int64_t ub = 4 * Bits;
  const uint8_t* row[RT];
  for (int t = 0; t < RT; ++t) row[t] = w.codes + (r + t * stride) * w.row_bytes;
  __m256 acc[RT][M];
  float corr[RT][M];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i] = _mm256_setzero_ps(), corr[t][i] = 0;
  for (int64_t g = 0; g < w.groups; ++g) {
    __m256 part[RT][M][2];
    for (int t = 0; t < RT; ++t)
      for (int i = 0; i < M; ++i) part[t][i][0] = part[t][i][1] = _mm256_setzero_ps();
    const int64_t u0 = g * w.units_per_group, u1 = u0 + w.units_per_group;
    for (int64_t u = u0; u < u1; ++u) {
      for (int t = 0; t < RT; ++t) {
        // Separate row streams consumed slowly: fetch ahead to overlap DRAM latency.
        _mm_prefetch(reinterpret_cast<const char*>(row[t] + u * ub + 1024), _MM_HINT_T0);
        __m256 f[4];
        expand<Bits>(row[t] + u * ub, f);
        for (int i = 0; i < M; ++i) {
          const float* xs = x.x + (i0 + i) * x.ldx + u * kUnit;
          for (int k = 0; k < 4; ++k)
            part[t][i][k & 1] =
                _mm256_fmadd_ps(f[k], _mm256_loadu_ps(xs + 8 * k), part[t][i][k & 1]);
        }
      }
    }
    for (int t = 0; t < RT; ++t) {
      const int64_t k = (r + t * stride) * w.groups + g;
      const __m256 s = _mm256_set1_ps(w.scale[k]);
      for (int i = 0; i < M; ++i) {
        acc[t][i] = _mm256_fmadd_ps(s, _mm256_add_ps(part[t][i][0], part[t][i][1]), acc[t][i]);
        corr[t][i] += w.offset[k] * x.sum[(i0 + i) * x.ldsum + g];
      }
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) y.store(i0 + i, r + t * stride, hsum(acc[t][i]) + corr[t][i]);
}

template <int Bits, int M>
MCW_AVX2 void affine_rows(const AffineView& w, const XRows& x, int64_t r0, int64_t r1, int64_t i0,
                          const YOut& y) {
  constexpr int RT = row_tile<M>();
  const int64_t q = row_stride(r0, r1, RT);
  for (int64_t k = 0; k < q; ++k) affine_tile<Bits, RT, M>(w, x, r0 + k, q, i0, y);
  for (int64_t r = r0 + RT * q; r < r1; ++r) affine_tile<Bits, 1, M>(w, x, r, 0, i0, y);
}

template <int Bits>
MCW_AVX2 void affine_bits(const AffineView& w, const XRows& x, int64_t r0, int64_t r1,
                          const YOut& y) {
  for (int64_t i0 = 0; i0 < x.m; i0 += 4) {
    switch (x.m - i0) {
      case 1:
        affine_rows<Bits, 1>(w, x, r0, r1, i0, y);
        break;
      case 2:
        affine_rows<Bits, 2>(w, x, r0, r1, i0, y);
        break;
      case 3:
        affine_rows<Bits, 3>(w, x, r0, r1, i0, y);
        break;
      default:
        affine_rows<Bits, 4>(w, x, r0, r1, i0, y);
        break;
    }
  }
}

MCW_AVX2 void avx2_affine(const AffineView& w, const XRows& x, int64_t r0, int64_t r1,
                          const YOut& y) {
  switch (w.bits) {
    case 2:
      affine_bits<2>(w, x, r0, r1, y);
      break;
    case 3:
      affine_bits<3>(w, x, r0, r1, y);
      break;
    case 4:
      affine_bits<4>(w, x, r0, r1, y);
      break;
    default:
      affine_bits<8>(w, x, r0, r1, y);
      break;
  }
}

template <int RT, int M>
MCW_AVX2_INLINE void f16_tile(const F16View& w, const XRows& x, int64_t r, int64_t stride,
                              int64_t i0, const YOut& y) {
  __m256 acc[RT][M][2];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i][0] = acc[t][i][1] = _mm256_setzero_ps();
  for (int64_t c = 0; c < w.ld; c += kUnit) {
    for (int t = 0; t < RT; ++t) {
      const uint16_t* p = w.w + (r + t * stride) * w.ld + c;
      __m256 f[4];
      for (int k = 0; k < 4; ++k)
        f[k] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8 * k)));
      for (int i = 0; i < M; ++i) {
        const float* xs = x.x + (i0 + i) * x.ldx + c;
        for (int k = 0; k < 4; ++k)
          acc[t][i][k & 1] = _mm256_fmadd_ps(f[k], _mm256_loadu_ps(xs + 8 * k), acc[t][i][k & 1]);
      }
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i)
      y.store(i0 + i, r + t * stride, hsum(_mm256_add_ps(acc[t][i][0], acc[t][i][1])));
}

// 2:4: each half block (8 values, 16 columns) gathers x with a permute of each of the two
// x vectors it spans and a blend: values 0..3 lie in the first 8 columns, 4..7 in the next.
template <int RT, int M>
MCW_AVX2_INLINE void sparse_tile(const Sparse24View& w, const XRows& x, int64_t r, int64_t stride,
                                 int64_t i0, const YOut& y) {
  const __m256i base = _mm256_set_epi32(4, 4, 0, 0, 4, 4, 0, 0);
  const __m256i shift = _mm256_set_epi32(14, 12, 10, 8, 6, 4, 2, 0);
  const __m256i three = _mm256_set1_epi32(3);
  __m256 acc[RT][M];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < w.blocks; ++b) {
    for (int t = 0; t < RT; ++t) {
      const int64_t k = (r + t * stride) * w.blocks + b;
      for (int h = 0; h < 2; ++h) {
        const __m256 v = _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.values + k * 16 + 8 * h)));
        const __m256i pos = _mm256_and_si256(
            _mm256_srlv_epi32(_mm256_set1_epi32(int(w.positions[k] >> (16 * h))), shift), three);
        const __m256i idx = _mm256_add_epi32(base, pos);
        for (int i = 0; i < M; ++i) {
          const float* xs = x.x + (i0 + i) * x.ldx + 32 * b + 16 * h;
          const __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xs), idx);
          const __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xs + 8), idx);
          acc[t][i] = _mm256_fmadd_ps(v, _mm256_blend_ps(lo, hi, 0xf0), acc[t][i]);
        }
      }
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) y.store(i0 + i, r + t * stride, hsum(acc[t][i]));
}

template <int M>
MCW_AVX2 void f16_rows(const F16View& w, const XRows& x, int64_t r0, int64_t r1, int64_t i0,
                       const YOut& y) {
  constexpr int RT = row_tile<M>();
  const int64_t q = row_stride(r0, r1, RT);
  for (int64_t k = 0; k < q; ++k) f16_tile<RT, M>(w, x, r0 + k, q, i0, y);
  for (int64_t r = r0 + RT * q; r < r1; ++r) f16_tile<1, M>(w, x, r, 0, i0, y);
}

template <int M>
MCW_AVX2 void sparse_rows(const Sparse24View& w, const XRows& x, int64_t r0, int64_t r1, int64_t i0,
                          const YOut& y) {
  constexpr int RT = row_tile<M>();
  const int64_t q = row_stride(r0, r1, RT);
  for (int64_t k = 0; k < q; ++k) sparse_tile<RT, M>(w, x, r0 + k, q, i0, y);
  for (int64_t r = r0 + RT * q; r < r1; ++r) sparse_tile<1, M>(w, x, r, 0, i0, y);
}

MCW_AVX2 void avx2_f16(const F16View& w, const XRows& x, int64_t r0, int64_t r1, const YOut& y) {
  for (int64_t i0 = 0; i0 < x.m; i0 += 4) {
    switch (x.m - i0) {
      case 1:
        f16_rows<1>(w, x, r0, r1, i0, y);
        break;
      case 2:
        f16_rows<2>(w, x, r0, r1, i0, y);
        break;
      case 3:
        f16_rows<3>(w, x, r0, r1, i0, y);
        break;
      default:
        f16_rows<4>(w, x, r0, r1, i0, y);
        break;
    }
  }
}

MCW_AVX2 void avx2_sparse24(const Sparse24View& w, const XRows& x, int64_t r0, int64_t r1,
                            const YOut& y) {
  for (int64_t i0 = 0; i0 < x.m; i0 += 4) {
    switch (x.m - i0) {
      case 1:
        sparse_rows<1>(w, x, r0, r1, i0, y);
        break;
      case 2:
        sparse_rows<2>(w, x, r0, r1, i0, y);
        break;
      case 3:
        sparse_rows<3>(w, x, r0, r1, i0, y);
        break;
      default:
        sparse_rows<4>(w, x, r0, r1, i0, y);
        break;
    }
  }
}

// The integer dots on the 256-bit vpdpbusd where the CPU has one (cpu_features.h: Vnni256).
void affine_i8_256(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y) {
  switch (cpu_features().vnni256) {
    case Vnni256::Vex:
      return affine_i8_avxvnni(w, x, r0, r1, y);
    case Vnni256::Evex:
      return affine_i8_avx512vl_vnni(w, x, r0, r1, y);
    default:
      return affine_i8_avx2(w, x, r0, r1, y);
  }
}

}  // namespace

const PackedGemvIsa& packed_isa_avx2() {
  static const PackedGemvIsa isa{"avx2", avx2_affine, affine_i8_256, avx2_f16, avx2_sparse24};
  return isa;
}

}  // namespace mcw::packed_detail

#else

namespace mcw::packed_detail {
const PackedGemvIsa& packed_isa_avx2() { return packed_isa_generic(); }
}  // namespace mcw::packed_detail

#endif
