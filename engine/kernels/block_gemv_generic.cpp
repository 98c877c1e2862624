// Portable pieces of the block-weight small-m product (block_gemv.h): every ggml block type
// rewritten as 8-bit codes with a scale and offset per 16 values, the integer dot product
// over them, and the path that uses only these. The unpacking follows each decoder in
// engine/core (blocks.cpp, kquant_blocks.cpp) value for value: a·u + b is the decoder's
// value up to the rounding of one multiply-add.
#include <cstring>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"
#include "engine/kernels/block_gemv_isa.h"

namespace mcw::block_detail {
namespace {

template <class Block>
const Block* blocks(const uint8_t* row) {
  return reinterpret_cast<const Block*>(row);
}

// Two groups of 16 with the same scale and offset (one 32-value block).
void pair(float* a, float* b, int64_t g, float scale, float offset) {
  a[g] = a[g + 1] = scale;
  b[g] = b[g + 1] = offset;
}

// Q5_0 / Q5_1: the low nibble and the fifth bit of value j and of value j + 16.
void five_bit(const uint8_t* qs, const uint8_t* qh_bytes, uint8_t* u) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  for (int j = 0; j < 16; ++j) {
    u[j] = uint8_t((qs[j] & 0x0f) | (((qh >> j) << 4) & 0x10));
    u[j + 16] = uint8_t((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
  }
}

void iq4_codes(const uint8_t* qs, uint8_t* u) {  // grid value + 128, 1..241
  for (int j = 0; j < 16; ++j) {
    u[j] = uint8_t(kIq4Grid[qs[j] & 0xf] + 128);
    u[j + 16] = uint8_t(kIq4Grid[qs[j] >> 4] + 128);
  }
}

}  // namespace

void unpack_row(DType type, const uint8_t* row, int64_t k, uint8_t* u, float* a, float* b) {
  switch (type) {
    case DType::Q8_0:
      for (int64_t c = 0; c < k / 32; ++c, u += 32) {
        const BlockQ8_0& x = blocks<BlockQ8_0>(row)[c];
        const float d = f16_to_f32(x.d);
        for (int i = 0; i < 32; ++i) u[i] = uint8_t(int(x.qs[i]) + 128);
        pair(a, b, 2 * c, d, -128.0f * d);
      }
      return;
    case DType::Q4_0:
    case DType::Q4_1:
      for (int64_t c = 0; c < k / 32; ++c, u += 32) {
        const uint8_t* qs;
        float d, offset;
        if (type == DType::Q4_0) {
          const BlockQ4_0& x = blocks<BlockQ4_0>(row)[c];
          d = f16_to_f32(x.d), offset = -8.0f * d, qs = x.qs;
        } else {
          const BlockQ4_1& x = blocks<BlockQ4_1>(row)[c];
          d = f16_to_f32(x.d), offset = f16_to_f32(x.m), qs = x.qs;
        }
        for (int j = 0; j < 16; ++j) u[j] = qs[j] & 0x0f, u[j + 16] = qs[j] >> 4;
        pair(a, b, 2 * c, d, offset);
      }
      return;
    case DType::Q5_0:
      for (int64_t c = 0; c < k / 32; ++c, u += 32) {
        const BlockQ5_0& x = blocks<BlockQ5_0>(row)[c];
        const float d = f16_to_f32(x.d);
        five_bit(x.qs, x.qh, u);
        pair(a, b, 2 * c, d, -16.0f * d);
      }
      return;
    case DType::Q5_1:
      for (int64_t c = 0; c < k / 32; ++c, u += 32) {
        const BlockQ5_1& x = blocks<BlockQ5_1>(row)[c];
        five_bit(x.qs, x.qh, u);
        pair(a, b, 2 * c, f16_to_f32(x.d), f16_to_f32(x.m));
      }
      return;
    case DType::IQ4_NL:
      for (int64_t c = 0; c < k / 32; ++c, u += 32) {
        const BlockIQ4_NL& x = blocks<BlockIQ4_NL>(row)[c];
        const float d = f16_to_f32(x.d);
        iq4_codes(x.qs, u);
        pair(a, b, 2 * c, d, -128.0f * d);
      }
      return;
    case DType::Q2_K:
    case DType::Q3_K:
      for (int64_t c = 0; c < k / kSuperBlock; ++c, a += 16, b += 16) {
        // Group order as the decoders walk it: two halves of 32 bytes, four 2-bit planes
        // in each, two groups of 16 per plane.
        const uint8_t* q;
        const uint8_t* hmask = nullptr;
        int8_t scale3[16];
        float d, dmin = 0;
        if (type == DType::Q2_K) {
          const BlockQ2_K& x = blocks<BlockQ2_K>(row)[c];
          q = x.qs, d = f16_to_f32(x.d), dmin = f16_to_f32(x.dmin);
          for (int g = 0; g < 16; ++g)
            a[g] = d * float(x.scales[g] & 0xf), b[g] = -(dmin * float(x.scales[g] >> 4));
        } else {
          const BlockQ3_K& x = blocks<BlockQ3_K>(row)[c];
          q = x.qs, hmask = x.hmask, d = f16_to_f32(x.d);
          for (int j = 0; j < 16; ++j) {
            const int low = j < 8 ? x.scales[j] & 0xf : x.scales[j - 8] >> 4;
            const int high = (x.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
            scale3[j] = int8_t(low | (high << 4));
            a[j] = d * float(scale3[j] - 32), b[j] = -4.0f * a[j];
          }
        }
        int plane = 0;
        for (int half = 0; half < 2; ++half, q += 32)
          for (int shift = 0; shift < 8; shift += 2, ++plane)
            for (int part = 0; part < 2; ++part)
              for (int l = 0; l < 16; ++l) {
                const int i = l + 16 * part;
                int v = (q[i] >> shift) & 3;
                if (hmask && (hmask[i] >> plane) & 1) v += 4;
                *u++ = uint8_t(v);
              }
      }
      return;
    case DType::Q4_K:
    case DType::Q5_K:
      for (int64_t c = 0; c < k / kSuperBlock; ++c) {
        const bool five = type == DType::Q5_K;
        const BlockQ4_K* x4 = five ? nullptr : &blocks<BlockQ4_K>(row)[c];
        const BlockQ5_K* x5 = five ? &blocks<BlockQ5_K>(row)[c] : nullptr;
        const float d = f16_to_f32(five ? x5->d : x4->d);
        const float dmin = f16_to_f32(five ? x5->dmin : x4->dmin);
        const uint8_t* scales = five ? x5->scales : x4->scales;
        const uint8_t* q = five ? x5->qs : x4->qs;
        for (int is = 0; is < 8; is += 2, q += 32, u += 64, a += 4, b += 4) {
          for (int h = 0; h < 2; ++h) {
            uint8_t sc, mn;
            kquant_scale_min(is + h, scales, sc, mn);
            pair(a, b, 2 * h, d * float(sc), -(dmin * float(mn)));
            for (int l = 0; l < 32; ++l) {
              int v = h ? q[l] >> 4 : q[l] & 0xf;
              if (five) v += ((x5->qh[l] >> (is + h)) & 1) << 4;
              u[32 * h + l] = uint8_t(v);
            }
          }
        }
      }
      return;
    case DType::Q6_K:
      for (int64_t c = 0; c < k / kSuperBlock; ++c) {
        const BlockQ6_K& x = blocks<BlockQ6_K>(row)[c];
        const float d = f16_to_f32(x.d);
        for (int g = 0; g < 16; ++g) a[g] = d * float(x.scales[g]), b[g] = -32.0f * a[g];
        a += 16, b += 16;
        for (int half = 0; half < 2; ++half, u += 128) {
          const uint8_t* ql = x.ql + 64 * half;
          const uint8_t* qh = x.qh + 32 * half;
          for (int l = 0; l < 32; ++l)
            for (int p = 0; p < 4; ++p)
              u[l + 32 * p] = uint8_t(((ql[l + 32 * (p % 2)] >> (4 * (p / 2))) & 0xf) |
                                      (((qh[l] >> (2 * p)) & 3) << 4));
        }
      }
      return;
    case DType::IQ4_XS:
      for (int64_t c = 0; c < k / kSuperBlock; ++c) {
        const BlockIQ4_XS& x = blocks<BlockIQ4_XS>(row)[c];
        const float d = f16_to_f32(x.d);
        for (int ib = 0; ib < 8; ++ib, u += 32) {
          const int ls = ((x.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) |
                         (((x.scales_h >> (2 * ib)) & 3) << 4);
          const float dl = d * float(ls - 32);
          iq4_codes(x.qs + 16 * ib, u);
          pair(a, b, 16 * c + 2 * ib, dl, -128.0f * dl);
        }
      }
      return;
    default:
      break;
  }
}

float unpacked_dot(const uint8_t* u, const float* a, const float* b, const Int8Activations& x,
                   int64_t k) {
  float acc = 0;
  for (int64_t g = 0; g < k / 16; ++g) {
    int32_t s = 0;
    for (int i = 0; i < 16; ++i) s += int32_t(u[16 * g + i]) * int32_t(x.q[size_t(16 * g + i)]);
    acc += a[g] * x.d16[size_t(g)] * float(s) + b[g] * x.sum16[size_t(g)];
  }
  return acc;
}

void rows_generic(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  thread_local std::vector<uint8_t> u;
  thread_local std::vector<float> a, b;
  u.resize(size_t(r.k)), a.resize(size_t(r.k / 16)), b.resize(size_t(r.k / 16));
  for (int64_t row = r0; row < r1; ++row) {
    unpack_row(r.type, r.w + row * r.row_bytes, r.k, u.data(), a.data(), b.data());
    for (int64_t i = 0; i < r.m; ++i)
      y.store(i, row, unpacked_dot(u.data(), a.data(), b.data(), r.x[i], r.k));
  }
}

}  // namespace mcw::block_detail
