// Internal: the int8-activation AWQ product's body (column_packed_gemv.h), shared by the
// AVX2 and AVX-512 VNNI kernel files. Each includes it once, inside mcw::column_detail's
// anonymous namespace, after defining MCW_AWQ_TARGET (its target attribute) and
//   __m256i awq_dot(__m256i acc, __m256i codes, __m256i x)
// which adds to each 32-bit lane of acc the sum of its four u8 codes times the four s8
// values of x (vpmaddubsw + vpmaddwd on AVX2; one vpdpbusd with VNNI). It includes nothing
// (it sits inside a namespace): the includer has <algorithm>, <vector>, simd.h,
// column_packed_gemv.h and gemv_output.h.
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
MCW_AWQ_TARGET inline void awq_codes(const __m256i* r, __m256i* c) {
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
MCW_AWQ_TARGET void awq_block(const ColumnPackedCodes& w, const PackedActivations* x, int64_t w0,
                              int64_t ab, const float* sc, float* sums) {
  const int64_t words = w.out / 8, block = x[0].block;
  const int valid = int(std::min<int64_t>(16, words - w0));  // the last unit may be short
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
        for (int v = 0; v < 8; ++v) acc[i][h][v] = awq_dot(acc[i][h][v], c[v], xq);
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
MCW_AWQ_TARGET void awq_units(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m,
                              float* Y, int64_t ldy, int64_t u0, int64_t u1, const float* bias,
                              bool accumulate) {
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
