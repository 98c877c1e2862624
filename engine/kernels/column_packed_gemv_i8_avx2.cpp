// The int8-activation paths of the GPTQ and AWQ products (column_packed_gemv.h) on AVX2.
//
// GPTQ: a word holds `per` = 32 / bits consecutive inputs of one output; a 32-byte load holds
// the words of 8 outputs. Masking each byte's plane p of bits (p = 0 .. 8 / bits − 1) gives,
// in every 32-bit lane, four codes of that output: inputs p, p + planes, p + 2·planes,
// p + 3·planes of the word. The four activations that meet them (x̂ rounded to int8, one
// scale per activation block) are packed once per product into one int32 (PackedActivations),
// so one broadcast and one vpmaddubsw per plane, one vpmaddwd per word row give each
// output's int32 sum of code · x̂ over the word. Over an activation block (whole word rows
// inside one group) the sums stay in int32; at its end one FMA adds s·dx·Σ q·x̂ and one
// subtracts s·z·Σ x̂ for the 8 outputs. 8-bit codes are made signed (q − 128, the zero point
// likewise) so that vpmaddubsw cannot saturate: |q − 128| <= 128, |x̂| <= 127.
//
// The weights are s·(q − z) unrounded: the checkpoint's decoder rounds each to the scales'
// dtype (f16: a relative 2^-11), the f32 path does, this one does not; with the rounding of
// x the result is within Σ|w|·(dx/2 + |x|·2^-11) of the exact product (the tests hold it to
// that). GPTQ without act-order only; AWQ (below) likewise. The driver checks the rest.
#include <algorithm>
#include <vector>

#include "engine/kernels/column_packed_gemv.h"
#include "engine/kernels/column_packed_isa.h"
#include "engine/kernels/gemv_output.h"

#if defined(__x86_64__)
#include "engine/kernels/avx2_util.h"

namespace mcw::column_detail {
namespace {

constexpr int64_t kLanes = 8;  // outputs per vector

template <int kBits, int M, bool kF16>
MCW_AVX2 void sweep_i8(const ColumnPackedCodes& w, const PackedActivations* x, int64_t c0,
                       int64_t c1, float* sums) {
  constexpr int kPer = 32 / kBits, kPlanes = 8 / kBits;
  const int64_t chunks = c1 - c0, o_begin = c0 * kLanes, block = x[0].block;
  const int64_t block_words = block / kPer;
  const __m256i mask = _mm256_set1_epi8(char((1 << kBits) - 1)), ones = _mm256_set1_epi16(1);
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  thread_local std::vector<float> sz;  // per chunk: 8 scales, then 8 scale · zero point
  sz.resize(size_t(2 * kLanes * chunks));
  std::fill_n(sums, M * chunks * kLanes, 0.0f);
  for (int64_t ab = 0; ab < w.in / block; ++ab) {
    if (ab * block % w.group_size == 0) {  // entering group g: its parameters, widened
      const int64_t g = ab * block / w.group_size;
      const uint32_t* qz = w.qzeros + g * w.zero_words;
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t o0 = o_begin + c * kLanes;
        float* s = sz.data() + 2 * kLanes * c;
        for (int t = 0; t < kLanes; ++t) {
          const int64_t bit = (o0 + t) * kBits;
          float z = float((qz[bit >> 5] >> (bit & 31)) & ((1u << kBits) - 1)) + w.zero_offset;
          if constexpr (kBits == 8) z -= 128;
          s[t] = kF16 ? _cvtsh_ss(static_cast<const uint16_t*>(w.scales)[g * w.out + o0 + t])
                      : static_cast<const float*>(w.scales)[g * w.out + o0 + t];
          s[kLanes + t] = s[t] * z;
        }
      }
    }
    const int64_t wr0 = ab * block_words;
    for (int64_t c = 0; c < chunks; ++c) {
      const uint32_t* col = w.qweight + wr0 * w.out + o_begin + c * kLanes;
      __m256i acc[M];
      for (int i = 0; i < M; ++i) acc[i] = _mm256_setzero_si256();
      for (int64_t r = 0; r < block_words; ++r) {
        const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + r * w.out));
        __m256i u[kPlanes];
        for (int p = 0; p < kPlanes; ++p)
          u[p] = kBits == 8 ? _mm256_xor_si256(codes, flip)
                            : _mm256_and_si256(_mm256_srli_epi16(codes, p * kBits), mask);
        for (int i = 0; i < M; ++i) {
          const int32_t* xp = x[i].xp.data() + (wr0 + r) * kPlanes;
          __m256i p16;
          if constexpr (kBits == 8) {  // signed codes: |q| against x̂ carrying q's sign
            p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(u[0], u[0]),
                                       _mm256_sign_epi8(_mm256_set1_epi32(xp[0]), u[0]));
          } else {
            p16 = _mm256_maddubs_epi16(u[0], _mm256_set1_epi32(xp[0]));
            for (int p = 1; p < kPlanes; ++p)
              p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(u[p], _mm256_set1_epi32(xp[p])));
          }
          acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p16, ones));
        }
      }
      const __m256 s = _mm256_loadu_ps(sz.data() + 2 * kLanes * c);
      const __m256 s_z = _mm256_loadu_ps(sz.data() + 2 * kLanes * c + kLanes);
      for (int i = 0; i < M; ++i) {
        float* out = sums + (i * chunks + c) * kLanes;
        __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i]),
                                   _mm256_mul_ps(s, _mm256_set1_ps(x[i].d[size_t(ab)])),
                                   _mm256_loadu_ps(out));
        v = _mm256_fnmadd_ps(s_z, _mm256_set1_ps(x[i].sum[size_t(ab)]), v);
        _mm256_storeu_ps(out, v);
      }
    }
  }
}

template <int kBits, int M, bool kF16>
void outputs_i8(const ColumnPackedCodes& w, const PackedActivations* x, float* Y, int64_t ldy,
                int64_t c0, int64_t c1, const float* bias, bool accumulate) {
  const int64_t width = (c1 - c0) * kLanes;
  thread_local std::vector<float> sums;
  sums.resize(size_t(M * width));
  sweep_i8<kBits, M, kF16>(w, x, c0, c1, sums.data());
  const GemvOutput out{Y, ldy, bias, accumulate};
  for (int i = 0; i < M; ++i)
    for (int64_t o = 0; o < width; ++o) out.store(i, c0 * kLanes + o, sums[size_t(i * width + o)]);
}

template <int kBits>
void units_bits(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  const bool f16 = w.scale_dtype == DType::F16;
  with_m(m, [&](auto M) {
    constexpr int kM = decltype(M)::value;
    (f16 ? outputs_i8<kBits, kM, true> : outputs_i8<kBits, kM, false>)(w, x, Y, ldy, u0, u1, bias,
                                                                       accumulate);
  });
}

// ---- AWQ: codes packed along the outputs. ----
//
// A word holds one input's codes for 8 outputs (nibble p: output kAwqOutput[p]). Four input
// rows' words for 8 word columns are transposed bytewise (two byte and two 16-bit unpacks
// per pair of rows), so each 32-bit lane holds byte b of one word from the 4 rows: its low
// nibbles are one output's codes for inputs i .. i + 3, its high nibbles another's. Those
// meet x̂[i .. i + 3] (4 consecutive int8 values, one broadcast) in one vpmaddubsw. A unit
// is 16 words (128 outputs: one 64-byte line of each qweight row), two halves of 8.

constexpr int kAwqOutput[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // nibble p holds output kAwqOutput[p]
constexpr int kAwqNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // output k sits at nibble kAwqNibble[k]

// The output (relative to the half's 64) of accumulator v (0-7: transposed vector v / 2,
// low nibbles for even v) at lane t (0-7).
constexpr int awq_output(int v, int t) {
  const int word = v / 2 + 4 * (t / 4), byte = t % 4, nibble = 2 * byte + v % 2;
  return 8 * word + kAwqOutput[nibble];
}

// Four rows' words (8 columns each) transposed: c[v] as awq_output describes.
MCW_AVX2 inline void awq_codes(const __m256i* r, __m256i* c) {
  const __m256i nib = _mm256_set1_epi8(0x0f);
  const __m256i t0 = _mm256_unpacklo_epi8(r[0], r[1]), t1 = _mm256_unpackhi_epi8(r[0], r[1]);
  const __m256i t2 = _mm256_unpacklo_epi8(r[2], r[3]), t3 = _mm256_unpackhi_epi8(r[2], r[3]);
  const __m256i u[4] = {_mm256_unpacklo_epi16(t0, t2), _mm256_unpackhi_epi16(t0, t2),
                        _mm256_unpacklo_epi16(t1, t3), _mm256_unpackhi_epi16(t1, t3)};
  for (int k = 0; k < 4; ++k) {
    c[2 * k] = _mm256_and_si256(u[k], nib);
    c[2 * k + 1] = _mm256_and_si256(_mm256_srli_epi16(u[k], 4), nib);
  }
}

// Unit u (words w0 ..) over activation block ab against M rows of x: sums (128 per row, in
// accumulator order) += the block's part; sc: the unit's scales, then scale · zero point.
template <int M>
MCW_AVX2 void awq_block(const ColumnPackedCodes& w, const PackedActivations* x, int64_t w0,
                        int64_t ab, const float* sc, float* sums) {
  const int64_t words = w.out / 8, block = x[0].block;
  const int valid = int(std::min<int64_t>(16, words - w0));  // the last unit may be short
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[M][2][8];
  for (int i = 0; i < M; ++i)
    for (int h = 0; h < 2; ++h)
      for (int v = 0; v < 8; ++v) acc[i][h][v] = _mm256_setzero_si256();
  for (int64_t in = ab * block; in < (ab + 1) * block; in += 4)
    for (int h = 0; h < 2; ++h) {
      __m256i r[4], c[8];
      const uint32_t* at = w.qweight + in * words + w0 + 8 * h;
      if (valid >= 8 * (h + 1)) {
        for (int k = 0; k < 4; ++k)
          r[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + k * words));
      } else {
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid - 8 * h),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (int k = 0; k < 4; ++k)
          r[k] = _mm256_maskload_epi32(reinterpret_cast<const int*>(at + k * words), mask);
      }
      awq_codes(r, c);
      for (int i = 0; i < M; ++i) {
        const __m256i xq = _mm256_set1_epi32(x[i].xp[size_t(in / 4)]);
        for (int v = 0; v < 8; ++v)
          acc[i][h][v] = _mm256_add_epi32(acc[i][h][v],
                                          _mm256_madd_epi16(_mm256_maddubs_epi16(c[v], xq), ones));
      }
    }
  for (int i = 0; i < M; ++i) {
    const __m256 dx = _mm256_set1_ps(x[i].d[size_t(ab)]),
                 sum = _mm256_set1_ps(x[i].sum[size_t(ab)]);
    float* out = sums + i * 128;
    for (int k = 0; k < 128; k += 8) {
      const __m256 a =
          _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][k / 64][k / 8 % 8]),
                          _mm256_mul_ps(_mm256_loadu_ps(sc + k), dx), _mm256_loadu_ps(out + k));
      _mm256_storeu_ps(out + k, _mm256_fnmadd_ps(_mm256_loadu_ps(sc + 128 + k), sum, a));
    }
  }
}

// Units [u0, u1) against all m rows of x: activation blocks outermost, so that a block's
// rows of qweight (a few hundred KB) stay in cache and in the TLB while every unit of the
// task, and every chunk of 8 rows of x, passes over them.
template <bool kF16>
MCW_AVX2 void awq_units(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                        int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  const int64_t block = x[0].block, units = u1 - u0;
  // Per unit: scales and scale · zero point, [2 halves][8 accumulators][8 lanes], and the
  // sums of each row of x in the same order.
  thread_local std::vector<float> params, sums;
  params.resize(size_t(units * 256)), sums.assign(size_t(units * m * 128), 0.0f);
  auto output = [&](int64_t u, int k) {
    return 8 * (16 * (u0 + u) + 8 * (k / 64)) + awq_output(k / 8 % 8, k % 8);
  };
  for (int64_t ab = 0; ab < w.in / block; ++ab) {
    if (ab * block % w.group_size == 0) {
      const int64_t g = ab * block / w.group_size;
      for (int64_t u = 0; u < units; ++u)
        for (int k = 0; k < 128; ++k) {  // half, accumulator, lane
          const int64_t o = output(u, k);
          float* sc = params.data() + u * 256 + k;
          if (o >= w.out) {
            sc[0] = sc[128] = 0;
            continue;
          }
          const uint32_t zw = w.qzeros[g * w.zero_words + o / 8];
          const float z = float((zw >> (4 * kAwqNibble[o % 8])) & 15) + w.zero_offset;
          sc[0] = kF16 ? _cvtsh_ss(static_cast<const uint16_t*>(w.scales)[g * w.out + o])
                       : static_cast<const float*>(w.scales)[g * w.out + o];
          sc[128] = sc[0] * z;
        }
    }
    for (int64_t u = 0; u < units; ++u)
      for (int64_t i0 = 0; i0 < m; i0 += kColumnPackedMaxM)
        with_m(std::min(kColumnPackedMaxM, m - i0), [&](auto M) {
          awq_block<decltype(M)::value>(w, x + i0, 16 * (u0 + u), ab, params.data() + u * 256,
                                        sums.data() + (u * m + i0) * 128);
        });
  }
  const GemvOutput out{Y, ldy, bias, accumulate};
  for (int64_t u = 0; u < units; ++u)
    for (int64_t i = 0; i < m; ++i)
      for (int k = 0; k < 128; ++k)
        if (const int64_t o = output(u, k); o < w.out)
          out.store(i, o, sums[size_t((u * m + i) * 128 + k)]);
}

}  // namespace

void units_i8_awq_avx2(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                       int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  (w.scale_dtype == DType::F16 ? awq_units<true> : awq_units<false>)(w, x, m, Y, ldy, u0, u1, bias,
                                                                     accumulate);
}

void units_i8_avx2(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                   int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate) {
  switch (w.bits) {
    case 2:
      return units_bits<2>(w, x, m, Y, ldy, u0, u1, bias, accumulate);
    case 4:
      return units_bits<4>(w, x, m, Y, ldy, u0, u1, bias, accumulate);
    default:
      return units_bits<8>(w, x, m, Y, ldy, u0, u1, bias, accumulate);
  }
}

}  // namespace mcw::column_detail

#else

namespace mcw::column_detail {
void units_i8_awq_avx2(const ColumnPackedCodes&, const PackedActivations*, int64_t, float*, int64_t,
                       int64_t, int64_t, const float*, bool) {}
void units_i8_avx2(const ColumnPackedCodes&, const PackedActivations*, int64_t, float*, int64_t,
                   int64_t, int64_t, const float*, bool) {}
}  // namespace mcw::column_detail

#endif
