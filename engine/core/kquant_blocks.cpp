#include "engine/core/kquant_blocks.h"

#include <cstring>

#include "engine/core/half.h"

namespace mcw {

const int8_t kIq4Grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                             1,    13,   25,  38,  53,  69,  89,  113};

void dequantize_q5_0(const BlockQ5_0* in, float* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = f16_to_f32(in[b].d);
    uint32_t qh;
    std::memcpy(&qh, in[b].qh, 4);
    for (int j = 0; j < 16; ++j) {  // bit j is value j's fifth bit, bit j + 16 value j + 16's
      const int lo = ((in[b].qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10)) - 16;
      const int hi = ((in[b].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
      y[j] = float(lo) * d, y[j + 16] = float(hi) * d;
    }
  }
}

void dequantize_q5_1(const BlockQ5_1* in, float* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = f16_to_f32(in[b].d), m = f16_to_f32(in[b].m);
    uint32_t qh;
    std::memcpy(&qh, in[b].qh, 4);
    for (int j = 0; j < 16; ++j) {
      const int lo = (in[b].qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10);
      const int hi = (in[b].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
      y[j] = float(lo) * d + m, y[j + 16] = float(hi) * d + m;
    }
  }
}

void dequantize_q2_k(const BlockQ2_K* in, float* y, size_t n) {
  for (size_t b = 0; b < n / kSuperBlock; ++b) {
    const BlockQ2_K& x = in[b];
    const float d = f16_to_f32(x.d), dmin = f16_to_f32(x.dmin);
    const uint8_t* q = x.qs;
    int is = 0;
    // Two halves of 128 values; in each, 32 bytes of q hold four 2-bit planes, and each
    // plane is two sub-blocks of 16 with a 4-bit scale and a 4-bit min.
    for (int half = 0; half < 2; ++half, q += 32)
      for (int shift = 0; shift < 8; shift += 2)
        for (int part = 0; part < 2; ++part) {
          const uint8_t sc = x.scales[is++];
          const float dl = d * float(sc & 0xf), ml = dmin * float(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l + 16 * part] >> shift) & 3) - ml;
        }
  }
}

void dequantize_q3_k(const BlockQ3_K* in, float* y, size_t n) {
  for (size_t b = 0; b < n / kSuperBlock; ++b) {
    const BlockQ3_K& x = in[b];
    const float d = f16_to_f32(x.d);
    // 16 6-bit scales: low nibbles in bytes 0-7, high 2 bits in bytes 8-11.
    int8_t scale[16];
    for (int j = 0; j < 16; ++j) {
      const int low = j < 8 ? x.scales[j] & 0xf : x.scales[j - 8] >> 4;
      const int high = (x.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
      scale[j] = int8_t(low | (high << 4));
    }
    const uint8_t* q = x.qs;
    uint8_t m = 1;
    int is = 0;
    for (int half = 0; half < 2; ++half, q += 32)
      for (int shift = 0; shift < 8; shift += 2, m = uint8_t(m << 1))
        for (int part = 0; part < 2; ++part) {
          const float dl = d * float(scale[is++] - 32);
          for (int l = 0; l < 16; ++l) {
            const int i = l + 16 * part;
            *y++ = dl * float(((q[i] >> shift) & 3) - ((x.hmask[i] & m) ? 0 : 4));
          }
        }
  }
}

void kquant_scale_min(int j, const uint8_t* q, uint8_t& scale, uint8_t& min) {
  if (j < 4) {
    scale = q[j] & 63, min = q[j + 4] & 63;
  } else {
    scale = uint8_t((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
    min = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K and Q5_K share everything but the fifth bit.
template <class Block, bool kFifth>
static void dequantize_k4(const Block* in, float* y, size_t n) {
  for (size_t b = 0; b < n / kSuperBlock; ++b) {
    const Block& x = in[b];
    const float d = f16_to_f32(x.d), dmin = f16_to_f32(x.dmin);
    const uint8_t* q = x.qs;
    for (int j = 0, is = 0; j < kSuperBlock; j += 64, q += 32, is += 2) {
      uint8_t sc, mn;
      kquant_scale_min(is, x.scales, sc, mn);
      const float d1 = d * float(sc), m1 = dmin * float(mn);
      kquant_scale_min(is + 1, x.scales, sc, mn);
      const float d2 = d * float(sc), m2 = dmin * float(mn);
      for (int l = 0; l < 32; ++l) {
        int v = q[l] & 0xf;
        if constexpr (kFifth) v += (x.qh[l] >> is) & 1 ? 16 : 0;
        *y++ = d1 * float(v) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        int v = q[l] >> 4;
        if constexpr (kFifth) v += (x.qh[l] >> (is + 1)) & 1 ? 16 : 0;
        *y++ = d2 * float(v) - m2;
      }
    }
  }
}

void dequantize_q4_k(const BlockQ4_K* in, float* y, size_t n) { dequantize_k4<BlockQ4_K, false>(in, y, n); }
void dequantize_q5_k(const BlockQ5_K* in, float* y, size_t n) { dequantize_k4<BlockQ5_K, true>(in, y, n); }

void dequantize_q6_k(const BlockQ6_K* in, float* y, size_t n) {
  for (size_t b = 0; b < n / kSuperBlock; ++b) {
    const BlockQ6_K& x = in[b];
    const float d = f16_to_f32(x.d);
    const uint8_t* ql = x.ql;
    const uint8_t* qh = x.qh;
    const int8_t* sc = x.scales;
    // Two halves of 128: value l + 32·p takes its low 4 bits from ql (nibble p / 2 of
    // byte l + 32·(p % 2)) and its high 2 bits from bits 2p..2p+1 of qh[l].
    for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8)
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        for (int p = 0; p < 4; ++p) {
          const int low = (ql[l + 32 * (p % 2)] >> (4 * (p / 2))) & 0xf;
          const int q = int8_t(low | (((qh[l] >> (2 * p)) & 3) << 4)) - 32;
          y[l + 32 * p] = d * float(sc[is + 2 * p]) * float(q);
        }
      }
  }
}

void dequantize_iq4_nl(const BlockIQ4_NL* in, float* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, y += 32) {
    const float d = f16_to_f32(in[b].d);
    for (int j = 0; j < 16; ++j)
      y[j] = d * float(kIq4Grid[in[b].qs[j] & 0xf]), y[j + 16] = d * float(kIq4Grid[in[b].qs[j] >> 4]);
  }
}

void dequantize_iq4_xs(const BlockIQ4_XS* in, float* y, size_t n) {
  for (size_t b = 0; b < n / kSuperBlock; ++b) {
    const BlockIQ4_XS& x = in[b];
    const float d = f16_to_f32(x.d);
    const uint8_t* qs = x.qs;
    for (int ib = 0; ib < 8; ++ib, y += 32, qs += 16) {
      const int ls = ((x.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) | (((x.scales_h >> (2 * ib)) & 3) << 4);
      const float dl = d * float(ls - 32);
      for (int j = 0; j < 16; ++j)
        y[j] = dl * float(kIq4Grid[qs[j] & 0xf]), y[j + 16] = dl * float(kIq4Grid[qs[j] >> 4]);
    }
  }
}

}  // namespace mcw
