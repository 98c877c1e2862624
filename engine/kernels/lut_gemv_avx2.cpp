// AVX2 path of the lookup-table product (lut_gemv_isa.h), for x86 CPUs without AVX-512
// VBMI/VNNI. It reads the same layout as the AVX-512 path, half a record (8 rows) per
// 32-byte register. vpshufb sees one 16-entry table per 128-bit lane, while the 4 bytes of
// a row's dword address 2 (pair records) or 4 (single-plane records) different tables: so
// each nibble vector is looked up in each of those tables and the results are blended byte
// by byte (vpblendw for pairs, and vpblendvb too for single planes). vpmaddubsw then weighs
// each byte by 2^plane (the unsigned operand; the table entry is the signed one) and adds
// byte pairs into int16, and once per superchunk vpmaddwd adds word pairs into the rows'
// int32 sums. With Int8 activations each nibble vector is looked up in TL and in TH, TH
// weighed by 16·2^p.
//
// Bounds (int16, before the widening): one vpmaddubsw word is at most (2^p + 2^p')·|T| with
// p, p' <= 3 on one pair record (p' = p + 1 <= 3) or one single-plane record (p' = p): Int6
// 12·124 = 1488, Int8 TL 12·60 = 720, TH 16·12·32 = 6144, none saturating. A superchunk's
// words add at most, over both nibbles of all its records, Int6 2·(3 + 12)·124 = 3720, Int8
// 2·(3 + 12)·(60 + 16·32) = 17160 (4 bits; 3 bits 12584, 1 and 2 bits less), inside int16
// whatever the order; the int32 sums are those of the other paths.
// The preparation of x rounds as the portable path (vcvtps2dq: nearest even) and builds the
// tables with byte shuffles and masked adds.
#include <algorithm>
#include <cmath>

#include "engine/kernels/lut_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"

namespace mcw::lut_detail {
namespace {

// The odd bytes of every word (vpblendvb takes them from its second operand).
MCW_AVX2_INLINE __m256i odd_bytes() { return _mm256_set1_epi16(int16_t(0xff00)); }

// idx looked up in table t (0..7) of a superchunk's set of tables, copied to both lanes.
MCW_AVX2_INLINE __m256i at(const int8_t* tables, int t, __m256i idx) {
  return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(
                                 reinterpret_cast<const __m128i*>(tables + 16 * t))),
                             idx);
}

// The bytes of idx looked up as nibble `hi` of record kind rk addresses them (lut_gemv_isa.h).
MCW_AVX2_INLINE __m256i lookup(const RecordKind& rk, int hi, __m256i idx, const int8_t* tables) {
  const int t0 = nibble_table(rk, 0, hi), t2 = nibble_table(rk, 2, hi);
  if (rk.pair)  // bytes 0, 1 of a dword: one table; bytes 2, 3: the next
    return _mm256_blend_epi16(at(tables, t0, idx), at(tables, t2, idx), 0xAA);
  const __m256i b01 = _mm256_blendv_epi8(at(tables, t0, idx),
                                         at(tables, nibble_table(rk, 1, hi), idx), odd_bytes());
  const __m256i b23 = _mm256_blendv_epi8(at(tables, t2, idx),
                                         at(tables, nibble_table(rk, 3, hi), idx), odd_bytes());
  return _mm256_blend_epi16(b01, b23, 0xAA);
}

constexpr int plane_weights(const RecordKind& rk) {
  int v = 0;
  for (int j = 0; j < 4; ++j) v |= (1 << nibble_plane(rk, j)) << (8 * j);
  return v;
}

template <int Bits, int M, bool Split>
MCW_AVX2_INLINE void block(const LutView& w, const LutX& x, int64_t b, const GemvOutput& y) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  const uint8_t* codes = w.codes + b * w.block_bytes;
  __m256 acc[M][2];
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < w.groups; ++g) {
    __m256i sum[M][2];  // per x row, per half block (8 rows): int32 row sums
    for (int i = 0; i < M; ++i) sum[i][0] = sum[i][1] = _mm256_setzero_si256();
    for (int64_t s = g * w.supers_per_group; s < (g + 1) * w.supers_per_group; ++s) {
      for (int h = 0; h < 2; ++h) {
        __m256i words[M];
        for (int i = 0; i < M; ++i) words[i] = _mm256_setzero_si256();
        for (int k = 0; k < Bits; ++k) {
          const RecordKind rk = record_kind(Bits, k);
          const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(
              codes + g * w.group_bytes + ((s - g * w.supers_per_group) * Bits + k) * kRecordBytes +
              32 * h));
          const __m256i lo = _mm256_and_si256(v, low4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
          const __m256i weight = _mm256_set1_epi32(plane_weights(rk));
          const __m256i weight16 = _mm256_slli_epi32(weight, 4);  // TH's, <= 128
          for (int i = 0; i < M; ++i) {
            const int8_t* t = x.tables + i * x.ld_tables + s * table_bytes(Split);
            words[i] =
                _mm256_add_epi16(words[i], _mm256_maddubs_epi16(weight, lookup(rk, 0, lo, t)));
            words[i] =
                _mm256_add_epi16(words[i], _mm256_maddubs_epi16(weight, lookup(rk, 1, hi, t)));
            if constexpr (Split) {
              const int8_t* th = t + kTableBytes;
              words[i] =
                  _mm256_add_epi16(words[i], _mm256_maddubs_epi16(weight16, lookup(rk, 0, lo, th)));
              words[i] =
                  _mm256_add_epi16(words[i], _mm256_maddubs_epi16(weight16, lookup(rk, 1, hi, th)));
            }
          }
        }
        for (int i = 0; i < M; ++i)
          sum[i][h] = _mm256_add_epi32(sum[i][h], _mm256_madd_epi16(words[i], ones));
      }
    }
    const float* so = reinterpret_cast<const float*>(codes + g * w.group_bytes +
                                                     w.supers_per_group * Bits * kRecordBytes);
    for (int h = 0; h < 2; ++h) {
      const __m256 scale = _mm256_load_ps(so + 8 * h);
      const __m256 offset = _mm256_load_ps(so + kBlockRows + 8 * h);
      for (int i = 0; i < M; ++i) {
        const __m256 f = _mm256_mul_ps(scale, _mm256_set1_ps(x.dx[i * x.ld_groups + g]));
        acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[i][h]), f, acc[i][h]);
        acc[i][h] = _mm256_fmadd_ps(offset, _mm256_set1_ps(x.sx[i * x.ld_groups + g]), acc[i][h]);
      }
    }
  }
  const int64_t r0 = b * kBlockRows, n = std::min<int64_t>(kBlockRows, w.rows - r0);
  for (int i = 0; i < M; ++i) {
    alignas(32) float out[kBlockRows];
    _mm256_store_ps(out, acc[i][0]);
    _mm256_store_ps(out + 8, acc[i][1]);
    for (int64_t rr = 0; rr < n; ++rr) y.store(i, r0 + rr, out[rr]);
  }
}

template <int Bits, int M, bool Split>
MCW_AVX2 void rows_m(const LutView& w, const LutX& x, int64_t b0, int64_t b1, const GemvOutput& y) {
  for (int64_t b = b0; b < b1; ++b) block<Bits, M, Split>(w, x, b, y);
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

void rows(const LutView& w, const LutX& x, int64_t b0, int64_t b1, const GemvOutput& y) {
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

// 16 rounded activations (x̂[4l .. 4l+3], l = 0..3) to their 4 tables: 64 bytes at t, byte
// 16l + i = Σ_k bit_k(i)·x̂[4l + k].
MCW_AVX2_INLINE void tables_of(__m128i q16, int8_t* t) {
  const __m256i q = _mm256_broadcastsi128_si256(q16);
  const __m256i entry = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1,
                                         2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int half = 0; half < 2; ++half) {  // tables 2·half and 2·half + 1, one per lane
    const int64_t l0 = 0x0101010101010101ll * (8 * half), l1 = l0 + 0x0404040404040404ll;
    __m256i sum = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      const __m256i bit = _mm256_set1_epi8(char(1 << k));
      const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(entry, bit), bit);  // bit k of i
      const __m256i pick =
          _mm256_add_epi8(_mm256_set_epi64x(l1, l1, l0, l0), _mm256_set1_epi8(char(k)));
      sum = _mm256_add_epi8(sum, _mm256_and_si256(_mm256_shuffle_epi8(q, pick), set));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + 32 * half), sum);
  }
}

// 8 activations times 1/dx, rounded to nearest even and clamped to ±top.
MCW_AVX2_INLINE __m256i rounded(const float* p, __m256 id, int top) {
  const __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(p), id));
  return _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(-top)), _mm256_set1_epi32(top));
}

// 16 int32 (in 0..7 of q0, then q1; each within int8) to 16 bytes in order: the packs work
// per lane, so the lanes are put back after.
MCW_AVX2_INLINE __m128i bytes_of(__m256i q0, __m256i q1) {
  const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
  return _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
}

MCW_AVX2 void prepare(const float* x, int64_t width, int64_t group, bool split, int8_t* tables,
                      float* dx, float* sx) {
  const int top = activation_max(split);
  const __m256 sign = _mm256_set1_ps(-0.0f), inf = _mm256_set1_ps(INFINITY);
  for (int64_t g = 0; g < width / group; ++g) {
    const float* v = x + g * group;
    __m256 amax = _mm256_setzero_ps();
    int finite = 0xff;
    for (int64_t i = 0; i < group; i += 8) {
      const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(v + i));
      amax = _mm256_max_ps(a, amax);  // a NaN in a leaves amax, as std::max does
      finite &= _mm256_movemask_ps(_mm256_cmp_ps(a, inf, _CMP_LT_OQ));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const bool all_finite = finite == 0xff;
    float d = all_finite ? _mm_cvtss_f32(m4) / float(top) : std::nanf(""),
          id = d > 0 ? 1.0f / d : 0.0f;
    if (!std::isfinite(id)) id = 0;
    if (all_finite && id == 0) d = 0;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i sum = _mm256_setzero_si256();
    for (int64_t i = 0; i < group; i += 16) {
      __m256i q0 = _mm256_setzero_si256(), q1 = q0;
      if (all_finite) q0 = rounded(v + i, vid, top), q1 = rounded(v + i + 8, vid, top);
      sum = _mm256_add_epi32(sum, _mm256_add_epi32(q0, q1));
      const int64_t at = g * group + i;  // superchunk at / 32, its tables 0..3 or 4..7
      int8_t* t = tables + at / kSuperchunk * table_bytes(split) + (at % kSuperchunk) / 16 * 64;
      if (!split) {
        tables_of(bytes_of(q0, q1), t);
      } else {  // x̂ = 16·h + l: TL over l = x̂ & 15, TH over h = x̂ >> 4
        const __m256i m15 = _mm256_set1_epi32(15);
        tables_of(bytes_of(_mm256_and_si256(q0, m15), _mm256_and_si256(q1, m15)), t);
        tables_of(bytes_of(_mm256_srai_epi32(q0, 4), _mm256_srai_epi32(q1, 4)), t + kTableBytes);
      }
    }
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    dx[g] = d;
    sx[g] = d * float(_mm_cvtsi128_si32(s4));
  }
}

}  // namespace

const LutIsa& lut_isa_avx2() {
  static const LutIsa isa{"avx2", prepare, rows};
  return isa;
}

}  // namespace mcw::lut_detail

#else

namespace mcw::lut_detail {
const LutIsa& lut_isa_avx2() { return lut_isa_generic(); }
}  // namespace mcw::lut_detail

#endif
