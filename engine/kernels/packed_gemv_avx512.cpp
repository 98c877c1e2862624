// AVX-512 path of the packed small-m products. Functions carry the target attribute, so
// the file builds with the baseline flags and only runs when cpu_features() says so.
//
// Codes are widened to i32 and converted to f32 in registers; the scale is applied once
// per group to a vector of partial sums, so a weight costs a widen, a convert and an FMA.
// A tile of RT rows × M rows of x keeps RT·M·2 independent accumulator chains in flight
// (8 for a plain GEMV), enough to hide the FMA latency.
#include "engine/kernels/packed_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/simd.h"

#define MCW_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define MCW_AVX512_INLINE MCW_AVX512 inline __attribute__((always_inline))

namespace mcw::packed_detail {
namespace {

// Codes 0..15 of a unit into f0, 16..31 into f1.
template <int Bits>
MCW_AVX512_INLINE void expand(const uint8_t* p, __m512& f0, __m512& f1) {
  __m128i a, b;
  if constexpr (Bits == 8) {
    a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
  } else if constexpr (Bits == 4) {
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
  __m512i ia = _mm512_cvtepu8_epi32(a), ib = _mm512_cvtepu8_epi32(b);
  if constexpr (Bits == 3) {
    uint32_t h;
    std::memcpy(&h, p + 8, 4);
    const __m512i four = _mm512_set1_epi32(4);
    ia = _mm512_mask_add_epi32(ia, __mmask16(h & 0xffff), ia, four);
    ib = _mm512_mask_add_epi32(ib, __mmask16(h >> 16), ib, four);
  }
  f0 = _mm512_cvtepi32_ps(ia);
  f1 = _mm512_cvtepi32_ps(ib);
}

constexpr int64_t kPrefetchBytes = 1024;

// Tile sizes: a GEMV takes 4 rows at once, more rows of x take fewer rows of W.
template <int M>
constexpr int row_tile() {
  return M == 1 ? 4 : M == 2 ? 2 : 1;
}

template <int Bits, int RT, int M>
MCW_AVX512_INLINE void affine_tile(const AffineView& w, const XRows& x, int64_t r, int64_t stride,
                                   int64_t i0, const YOut& y) {
  constexpr int64_t ub = 4 * Bits;
  const uint8_t* row[RT];
  for (int t = 0; t < RT; ++t) row[t] = w.codes + (r + t * stride) * w.row_bytes;
  const float* xr[M];
  for (int i = 0; i < M; ++i) xr[i] = x.x + (i0 + i) * x.ldx;
  __m512 acc[RT][M];
  float corr[RT][M];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i] = _mm512_setzero_ps(), corr[t][i] = 0;
  for (int64_t g = 0; g < w.groups; ++g) {
    __m512 part[RT][M][2];
    for (int t = 0; t < RT; ++t)
      for (int i = 0; i < M; ++i) part[t][i][0] = part[t][i][1] = _mm512_setzero_ps();
    const int64_t u0 = g * w.units_per_group, u1 = u0 + w.units_per_group;
    for (int64_t u = u0; u < u1; ++u) {
      __m512 xv[M][2];
      for (int i = 0; i < M; ++i) {
        xv[i][0] = _mm512_loadu_ps(xr[i] + u * kUnit);
        xv[i][1] = _mm512_loadu_ps(xr[i] + u * kUnit + 16);
      }
      for (int t = 0; t < RT; ++t) {
        // The rows are separate streams consumed slowly (many instructions per byte):
        // fetch ahead so that DRAM latency overlaps with the arithmetic.
        _mm_prefetch(reinterpret_cast<const char*>(row[t] + u * ub + kPrefetchBytes), _MM_HINT_T0);
        __m512 f0, f1;
        expand<Bits>(row[t] + u * ub, f0, f1);
        for (int i = 0; i < M; ++i) {
          part[t][i][0] = _mm512_fmadd_ps(f0, xv[i][0], part[t][i][0]);
          part[t][i][1] = _mm512_fmadd_ps(f1, xv[i][1], part[t][i][1]);
        }
      }
    }
    for (int t = 0; t < RT; ++t) {
      const int64_t k = (r + t * stride) * w.groups + g;
      const __m512 s = _mm512_set1_ps(w.scale[k]);
      for (int i = 0; i < M; ++i) {
        acc[t][i] = _mm512_fmadd_ps(s, _mm512_add_ps(part[t][i][0], part[t][i][1]), acc[t][i]);
        corr[t][i] += w.offset[k] * x.sum[(i0 + i) * x.ldsum + g];
      }
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i)
      y.store(i0 + i, r + t * stride, _mm512_reduce_add_ps(acc[t][i]) + corr[t][i]);
}

template <int Bits, int M>
MCW_AVX512 void affine_rows(const AffineView& w, const XRows& x, int64_t r0, int64_t r1, int64_t i0,
                            const YOut& y) {
  constexpr int RT = row_tile<M>();
  const int64_t q = row_stride(r0, r1, RT);
  for (int64_t k = 0; k < q; ++k) affine_tile<Bits, RT, M>(w, x, r0 + k, q, i0, y);
  for (int64_t r = r0 + RT * q; r < r1; ++r) affine_tile<Bits, 1, M>(w, x, r, 0, i0, y);
}

template <int Bits>
MCW_AVX512 void affine_bits(const AffineView& w, const XRows& x, int64_t r0, int64_t r1,
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

MCW_AVX512 void avx512_affine(const AffineView& w, const XRows& x, int64_t r0, int64_t r1,
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

// Dense f16: two f16 vectors of weights per 32-column step, converted in registers.
template <int RT, int M>
MCW_AVX512_INLINE void f16_tile(const F16View& w, const XRows& x, int64_t r, int64_t stride,
                                int64_t i0, const YOut& y) {
  __m512 acc[RT][M][2];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i][0] = acc[t][i][1] = _mm512_setzero_ps();
  for (int64_t c = 0; c < w.ld; c += kUnit) {
    __m512 xv[M][2];
    for (int i = 0; i < M; ++i) {
      xv[i][0] = _mm512_loadu_ps(x.x + (i0 + i) * x.ldx + c);
      xv[i][1] = _mm512_loadu_ps(x.x + (i0 + i) * x.ldx + c + 16);
    }
    for (int t = 0; t < RT; ++t) {
      const uint16_t* p = w.w + (r + t * stride) * w.ld + c;
      const __m512 f0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      const __m512 f1 =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
      for (int i = 0; i < M; ++i) {
        acc[t][i][0] = _mm512_fmadd_ps(f0, xv[i][0], acc[t][i][0]);
        acc[t][i][1] = _mm512_fmadd_ps(f1, xv[i][1], acc[t][i][1]);
      }
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i)
      y.store(i0 + i, r + t * stride,
              _mm512_reduce_add_ps(_mm512_add_ps(acc[t][i][0], acc[t][i][1])));
}

template <int RT, int M>
MCW_AVX512_INLINE void sparse_tile(const Sparse24View& w, const XRows& x, int64_t r, int64_t stride,
                                   int64_t i0, const YOut& y) {
  // 2:4: 16 kept values per 32 columns. Value k sits in group k / 2, at column
  // 4·(k / 2) + its position: x is gathered with one two-register permute.
  const __m512i base = _mm512_set_epi32(28, 28, 24, 24, 20, 20, 16, 16, 12, 12, 8, 8, 4, 4, 0, 0);
  const __m512i shift = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i three = _mm512_set1_epi32(3);
  __m512 acc[RT][M];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < w.blocks; ++b) {
    __m512 xv[M][2];
    for (int i = 0; i < M; ++i) {
      xv[i][0] = _mm512_loadu_ps(x.x + (i0 + i) * x.ldx + 32 * b);
      xv[i][1] = _mm512_loadu_ps(x.x + (i0 + i) * x.ldx + 32 * b + 16);
    }
    for (int t = 0; t < RT; ++t) {
      const int64_t k = (r + t * stride) * w.blocks + b;
      const __m512 v =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.values + k * 16)));
      const __m512i pos =
          _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(int(w.positions[k])), shift), three);
      const __m512i idx = _mm512_add_epi32(base, pos);
      for (int i = 0; i < M; ++i) {
        const __m512 xg = _mm512_permutex2var_ps(xv[i][0], idx, xv[i][1]);
        acc[t][i] = _mm512_fmadd_ps(v, xg, acc[t][i]);
      }
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) y.store(i0 + i, r + t * stride, _mm512_reduce_add_ps(acc[t][i]));
}

template <int M>
MCW_AVX512 void f16_rows(const F16View& w, const XRows& x, int64_t r0, int64_t r1, int64_t i0,
                         const YOut& y) {
  constexpr int RT = row_tile<M>();
  const int64_t q = row_stride(r0, r1, RT);
  for (int64_t k = 0; k < q; ++k) f16_tile<RT, M>(w, x, r0 + k, q, i0, y);
  for (int64_t r = r0 + RT * q; r < r1; ++r) f16_tile<1, M>(w, x, r, 0, i0, y);
}

template <int M>
MCW_AVX512 void sparse_rows(const Sparse24View& w, const XRows& x, int64_t r0, int64_t r1,
                            int64_t i0, const YOut& y) {
  constexpr int RT = row_tile<M>();
  const int64_t q = row_stride(r0, r1, RT);
  for (int64_t k = 0; k < q; ++k) sparse_tile<RT, M>(w, x, r0 + k, q, i0, y);
  for (int64_t r = r0 + RT * q; r < r1; ++r) sparse_tile<1, M>(w, x, r, 0, i0, y);
}

MCW_AVX512 void avx512_f16(const F16View& w, const XRows& x, int64_t r0, int64_t r1,
                           const YOut& y) {
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

MCW_AVX512 void avx512_sparse24(const Sparse24View& w, const XRows& x, int64_t r0, int64_t r1,
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

}  // namespace

const PackedGemvIsa& packed_isa_avx512() {
  // Integer dots with vpdpbusd where the CPU has AVX-512 VNNI, else the AVX2 ones.
  static const PackedGemvIsa isa{
      "avx512", avx512_affine,
      cpu_features().avx512vnni ? affine_i8_avx512_vnni : affine_i8_avx2, avx512_f16,
      avx512_sparse24};
  return isa;
}

}  // namespace mcw::packed_detail

#else

namespace mcw::packed_detail {
const PackedGemvIsa& packed_isa_avx512() { return packed_isa_generic(); }
}  // namespace mcw::packed_detail

#endif
