// AVX-512 path of the lookup-table product (lut_gemv_isa.h), for CPUs with VBMI and VNNI
// (Intel since Ice Lake, AMD Zen 4/5).
//
// A 64-byte record holds 128 indices: 16 rows × 4 bytes × 2 nibbles. Per half (low nibbles,
// then high ones): one vpternlogd masks the nibble and ORs in 16·(table mod 4), one vpermb
// looks the 64 indices up in the register of 4 tables they address, and one vpdpbusd
// multiplies each byte by its plane's weight 2^p (the unsigned operand; the table entries
// are the signed one) and adds the row's 4 bytes into its int32 sum; with Int8 activations
// a second vpermb and vpdpbusd do the same for the TH tables with weights 16·2^p. vpermb
// rather than vpshufb because the 4 bytes a row's dword adds must come from different
// tables (two planes × two tables, or four tables of one plane), and vpshufb sees one
// 16-byte table per 128-bit lane.
//
// Bounds: a vpdpbusd adds 4 products of |T| <= 124 (Int6; Int8: TL <= 60 by 2^p <= 8, or
// |TH| <= 32 by 16·2^p <= 128) to a sum; per (row, group) the two running sums together
// are S = Σ q·x̂, |S| <= 15·127·group_size < 2^31 (group_size <= 2^20), and every partial
// sum is bounded by the same sum of magnitudes: no overflow, the integers are exact, and the
// per-group epilogue matches the generic path's operations one for one.
// The preparation of x rounds and builds the tables 16 activations at a time: vcvtps2dq
// rounds to nearest even as the portable path does, and a table register (4 tables of 16)
// is 4 byte shuffles of the 16 activations with masked adds.
// Functions carry the target attribute, so the file builds with the baseline flags.
#include <algorithm>
#include <cmath>

#include "engine/kernels/lut_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/simd.h"

#define MCW_LUT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,fma")))
#define MCW_LUT_INLINE MCW_LUT inline __attribute__((always_inline))

namespace mcw::lut_detail {
namespace {

// vpternlogd truth table for (a & b) | c.
constexpr int kAndOr = 0xEA;

// 16·(table mod 4) for each byte j of a row's dword (lut_gemv_isa.h).
constexpr int kSelPairLow = 0x10100000, kSelPairHigh = 0x30302020, kSelSingle = 0x30201000;

// The weight 2^plane of each byte j of a row's dword.
constexpr int plane_weights(const RecordKind& rk) {
  int v = 0;
  for (int j = 0; j < 4; ++j) v |= (1 << nibble_plane(rk, j)) << (8 * j);
  return v;
}

template <int Bits, int RT, int M, bool Split>
MCW_LUT_INLINE void tile(const LutView& w, const LutX& x, int64_t b, const GemvOutput& y) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const int8_t* tables[M];
  const float *dx[M], *sx[M];
  for (int i = 0; i < M; ++i) {
    tables[i] = x.tables + i * x.ld_tables;
    dx[i] = x.dx + i * x.ld_groups, sx[i] = x.sx + i * x.ld_groups;
  }
  const uint8_t* block[RT];
  for (int t = 0; t < RT; ++t) block[t] = w.codes + (b + t) * w.block_bytes;
  __m512 acc[RT][M];
  for (int t = 0; t < RT; ++t)
    for (int i = 0; i < M; ++i) acc[t][i] = _mm512_setzero_ps();

  for (int64_t g = 0; g < w.groups; ++g) {
    // Two int32 chains per (tile row block, x row), low and high nibbles, for latency.
    __m512i sum[RT][M][2];
    for (int t = 0; t < RT; ++t)
      for (int i = 0; i < M; ++i) sum[t][i][0] = sum[t][i][1] = _mm512_setzero_si512();
    for (int64_t s = g * w.supers_per_group; s < (g + 1) * w.supers_per_group; ++s) {
      // [i][0..1]: the tables (Int8: TL), [i][2..3]: TH (Int8 only).
      __m512i tab[M][Split ? 4 : 2];
      for (int i = 0; i < M; ++i)
        for (int r = 0; r < (Split ? 4 : 2); ++r)
          tab[i][r] = _mm512_loadu_si512(tables[i] + s * table_bytes(Split) + 64 * r);
      for (int t = 0; t < RT; ++t) {
        const uint8_t* rec =
            block[t] + g * w.group_bytes + (s - g * w.supers_per_group) * Bits * kRecordBytes;
        for (int k = 0; k < Bits; ++k) {
          const RecordKind rk = record_kind(Bits, k);
          const __m512i v = _mm512_load_si512(rec + k * kRecordBytes);
          const __m512i lo = _mm512_ternarylogic_epi32(
              v, low4, _mm512_set1_epi32(rk.pair ? kSelPairLow : kSelSingle), kAndOr);
          const __m512i hi = _mm512_ternarylogic_epi32(
              _mm512_srli_epi16(v, 4), low4, _mm512_set1_epi32(rk.pair ? kSelPairHigh : kSelSingle),
              kAndOr);
          const __m512i weight = _mm512_set1_epi32(plane_weights(rk));
          // TH's weights 16·2^p <= 128 still fit vpdpbusd's unsigned operand.
          const __m512i weight16 = _mm512_slli_epi32(weight, 4);
          // Low nibbles address tables 4h + (0..3) of a pair's half h, or tables 0..3 of a
          // single plane; high nibbles the same half's, or tables 4..7.
          const int lo_reg = rk.pair ? rk.half : 0, hi_reg = rk.pair ? rk.half : 1;
          for (int i = 0; i < M; ++i) {
            sum[t][i][0] = _mm512_dpbusd_epi32(sum[t][i][0], weight,
                                               _mm512_permutexvar_epi8(lo, tab[i][lo_reg]));
            sum[t][i][1] = _mm512_dpbusd_epi32(sum[t][i][1], weight,
                                               _mm512_permutexvar_epi8(hi, tab[i][hi_reg]));
            if constexpr (Split) {
              sum[t][i][0] = _mm512_dpbusd_epi32(sum[t][i][0], weight16,
                                                 _mm512_permutexvar_epi8(lo, tab[i][2 + lo_reg]));
              sum[t][i][1] = _mm512_dpbusd_epi32(sum[t][i][1], weight16,
                                                 _mm512_permutexvar_epi8(hi, tab[i][2 + hi_reg]));
            }
          }
        }
      }
    }
    for (int t = 0; t < RT; ++t) {
      const float* so = reinterpret_cast<const float*>(block[t] + g * w.group_bytes +
                                                       w.supers_per_group * Bits * kRecordBytes);
      const __m512 scale = _mm512_load_ps(so), offset = _mm512_load_ps(so + kBlockRows);
      for (int i = 0; i < M; ++i) {
        const __m512 f = _mm512_mul_ps(scale, _mm512_set1_ps(dx[i][g]));
        const __m512i S = _mm512_add_epi32(sum[t][i][0], sum[t][i][1]);
        acc[t][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S), f, acc[t][i]);
        acc[t][i] = _mm512_fmadd_ps(offset, _mm512_set1_ps(sx[i][g]), acc[t][i]);
      }
    }
  }
  for (int t = 0; t < RT; ++t) {
    const int64_t r0 = (b + t) * kBlockRows, n = std::min<int64_t>(kBlockRows, w.rows - r0);
    for (int i = 0; i < M; ++i) {
      alignas(64) float out[kBlockRows];
      _mm512_store_ps(out, acc[t][i]);
      for (int64_t rr = 0; rr < n; ++rr) y.store(i, r0 + rr, out[rr]);
    }
  }
}

// Row blocks per tile: at m = 1 four blocks share each superchunk's table loads and give
// eight independent vpdpbusd chains; more rows of x give those chains themselves.
template <int M>
constexpr int row_tile() {
  return M == 1 ? 4 : M == 2 ? 2 : 1;
}

template <int Bits, int M, bool Split>
MCW_LUT void rows_m(const LutView& w, const LutX& x, int64_t b0, int64_t b1, const GemvOutput& y) {
  constexpr int RT = row_tile<M>();
  int64_t b = b0;
  for (; b + RT <= b1; b += RT) tile<Bits, RT, M, Split>(w, x, b, y);
  for (; b < b1; ++b) tile<Bits, 1, M, Split>(w, x, b, y);
}

template <int Bits>
void rows_bits(const LutView& w, const LutX& x, int64_t b0, int64_t b1, const GemvOutput& y) {
  with_m(x.m, [&](auto M) {
    if (x.split)
      rows_m<Bits, decltype(M)::value, true>(w, x, b0, b1, y);
    else
      rows_m<Bits, decltype(M)::value, false>(w, x, b0, b1, y);
  });
}

// 4·l in every byte of a 64-bit half of lane l.
constexpr int64_t lane4(int l) { return int64_t(0x0101010101010101ull * uint64_t(4 * l)); }

// 16 rounded activations (x̂[4l .. 4l+3] for l = 0..3) to their 4 tables: byte 16l + i of
// the result is Σ_k bit_k(i)·x̂[4l + k].
MCW_LUT_INLINE __m512i tables_of(__m128i q16) {
  const __m512i q = _mm512_broadcast_i32x4(q16);
  __m512i t = _mm512_setzero_si512();
  for (int k = 0; k < 4; ++k) {
    // Byte j takes x̂[4·(j / 16) + k] of its lane's copy, where bit k of j mod 16 is set.
    const __m512i pick = _mm512_add_epi8(
        _mm512_set_epi64(lane4(3), lane4(3), lane4(2), lane4(2), lane4(1), lane4(1), 0, 0),
        _mm512_set1_epi8(char(k)));
    constexpr uint64_t kBit[4] = {0xAAAAAAAAAAAAAAAAull, 0xCCCCCCCCCCCCCCCCull,
                                  0xF0F0F0F0F0F0F0F0ull, 0xFF00FF00FF00FF00ull};
    t = _mm512_mask_add_epi8(t, __mmask64(kBit[k]), t, _mm512_shuffle_epi8(q, pick));
  }
  return t;
}

// lut_quantize_activations and the portable path's tables, 16 activations at a time: the
// same amax (NaN ignored, as std::max ignores it), the same scalar d and 1/d, the same
// products rounded the same way.
MCW_LUT void prepare(const float* x, int64_t width, int64_t group, bool split, int8_t* tables,
                     float* dx, float* sx) {
  const int top = activation_max(split);
  const __m512 inf = _mm512_set1_ps(INFINITY);
  for (int64_t g = 0; g < width / group; ++g) {
    const float* v = x + g * group;
    __m512 amax = _mm512_setzero_ps();
    __mmask16 finite = 0xffff;
    for (int64_t i = 0; i < group; i += 16) {
      const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(v + i));
      amax = _mm512_max_ps(a, amax);  // a NaN in a leaves amax
      finite &= _mm512_cmp_ps_mask(a, inf, _CMP_LT_OQ);
    }
    const bool all_finite = finite == 0xffff;
    float d = all_finite ? _mm512_reduce_max_ps(amax) / float(top) : std::nanf("");
    float id = d > 0 ? 1.0f / d : 0.0f;
    if (!std::isfinite(id)) id = 0;
    if (all_finite && id == 0) d = 0;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i lo = _mm512_set1_epi32(-top), hi = _mm512_set1_epi32(top);
    __m512i sum = _mm512_setzero_si512();
    for (int64_t i = 0; i < group; i += 16) {
      __m512i q = _mm512_setzero_si512();
      if (all_finite)
        q = _mm512_min_epi32(
            _mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(v + i), vid)), lo),
            hi);
      sum = _mm512_add_epi32(sum, q);
      const int64_t at = g * group + i;  // superchunk at / 32, its tables 0..3 or 4..7
      int8_t* t = tables + at / kSuperchunk * table_bytes(split) + (at % kSuperchunk) / 16 * 64;
      if (!split) {
        _mm512_storeu_si512(t, tables_of(_mm512_cvtepi32_epi8(q)));
      } else {  // x̂ = 16·h + l: TL over l = x̂ & 15, TH over h = x̂ >> 4
        const __m512i l = _mm512_and_si512(q, _mm512_set1_epi32(15)), h = _mm512_srai_epi32(q, 4);
        _mm512_storeu_si512(t, tables_of(_mm512_cvtepi32_epi8(l)));
        _mm512_storeu_si512(t + kTableBytes, tables_of(_mm512_cvtepi32_epi8(h)));
      }
    }
    dx[g] = d;
    sx[g] = d * float(_mm512_reduce_add_epi32(sum));
  }
}

MCW_LUT void rows(const LutView& w, const LutX& x, int64_t b0, int64_t b1, const GemvOutput& y) {
  switch (w.bits) {
    case 1:
      return rows_bits<1>(w, x, b0, b1, y);
    case 2:
      return rows_bits<2>(w, x, b0, b1, y);
    case 3:
      return rows_bits<3>(w, x, b0, b1, y);
    default:
      return rows_bits<4>(w, x, b0, b1, y);
  }
}

}  // namespace

const LutIsa& lut_isa_avx512() {
  static const LutIsa isa{"avx512", prepare, rows};
  return isa;
}

}  // namespace mcw::lut_detail

#else

namespace mcw::lut_detail {
const LutIsa& lut_isa_avx512() { return lut_isa_generic(); }
}  // namespace mcw::lut_detail

#endif
