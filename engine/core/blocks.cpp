#include "engine/core/blocks.h"

#include "engine/core/kquant_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/error.h"
#include "engine/core/half.h"

namespace mcw {

void quantize_q8_0(const float* x, BlockQ8_0* out, size_t n) {
  for (size_t b = 0; b < n / kQBlock; ++b, x += kQBlock) {
    float amax = 0;
    for (int j = 0; j < kQBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int j = 0; j < kQBlock; ++j) out[b].qs[j] = int8_t(std::round(x[j] * id));
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* out, size_t n) {
  for (size_t b = 0; b < n / kQBlock; ++b, x += kQBlock) {
    // The scale is signed: the value of largest magnitude maps exactly to -8.
    float amax = 0, vmax = 0;
    for (int j = 0; j < kQBlock; ++j)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), vmax = x[j];
    const float d = vmax / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int lo = std::min(15, int(int8_t(x[j] * id + 8.5f)));
      const int hi = std::min(15, int(int8_t(x[j + 16] * id + 8.5f)));
      out[b].qs[j] = uint8_t(lo | (hi << 4));
    }
  }
}

void quantize_q4_1(const float* x, BlockQ4_1* out, size_t n) {
  for (size_t b = 0; b < n / kQBlock; ++b, x += kQBlock) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < kQBlock; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
    const float d = (hi - lo) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    out[b].m = f32_to_f16(lo);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, int(int8_t((x[j] - lo) * id + 0.5f)));
      const int q1 = std::min(15, int(int8_t((x[j + 16] - lo) * id + 0.5f)));
      out[b].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* in, float* y, size_t n) {
  for (size_t b = 0; b < n / kQBlock; ++b, y += kQBlock) {
    const float d = f16_to_f32(in[b].d);
    for (int j = 0; j < kQBlock; ++j) y[j] = d * float(in[b].qs[j]);
  }
}

void dequantize_q4_0(const BlockQ4_0* in, float* y, size_t n) {
  for (size_t b = 0; b < n / kQBlock; ++b, y += kQBlock) {
    const float d = f16_to_f32(in[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float((in[b].qs[j] & 0xf) - 8);
      y[j + 16] = d * float((in[b].qs[j] >> 4) - 8);
    }
  }
}

void dequantize_q4_1(const BlockQ4_1* in, float* y, size_t n) {
  for (size_t b = 0; b < n / kQBlock; ++b, y += kQBlock) {
    const float d = f16_to_f32(in[b].d), m = f16_to_f32(in[b].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * float(in[b].qs[j] & 0xf) + m;
      y[j + 16] = d * float(in[b].qs[j] >> 4) + m;
    }
  }
}

static float f8_e4m3_to_f32(uint8_t b) {  // the "fn" variant: no Inf, one NaN pattern
  const float sign = (b & 0x80) ? -1.0f : 1.0f;
  const int e = (b >> 3) & 0xf, m = b & 7;
  if (e == 15 && m == 7) return std::nanf("");
  if (e == 0) return sign * std::ldexp(float(m), -9);
  return sign * std::ldexp(1.0f + float(m) / 8.0f, e - 7);
}

template <class T>
static void widen(const void* src, float* dst, size_t n) {
  T tmp;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(&tmp, static_cast<const char*>(src) + i * sizeof(T), sizeof(T));
    dst[i] = float(tmp);
  }
}

void to_f32(DType t, const void* src, float* dst, size_t n) {
  if (n == 0) return;  // empty tensors may have null data
  const auto* u16 = static_cast<const uint16_t*>(src);
  const auto* u8 = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: f16_to_f32_row(u16, dst, n); return;
    case DType::BF16: bf16_to_f32_row(u16, dst, n); return;
    case DType::F64: widen<double>(src, dst, n); return;
    case DType::F8_E4M3: for (size_t i = 0; i < n; ++i) dst[i] = f8_e4m3_to_f32(u8[i]); return;
    case DType::F8_E5M2: for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(uint16_t(u8[i] << 8)); return;
    case DType::I8: widen<int8_t>(src, dst, n); return;
    case DType::I16: widen<int16_t>(src, dst, n); return;
    case DType::I32: widen<int32_t>(src, dst, n); return;
    case DType::I64: widen<int64_t>(src, dst, n); return;
    case DType::U8: case DType::BOOL: widen<uint8_t>(src, dst, n); return;
    case DType::U16: widen<uint16_t>(src, dst, n); return;
    case DType::U32: widen<uint32_t>(src, dst, n); return;
    case DType::U64: widen<uint64_t>(src, dst, n); return;
    case DType::Q8_0: dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, n); return;
    case DType::Q4_0: dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, n); return;
    case DType::Q4_1: dequantize_q4_1(static_cast<const BlockQ4_1*>(src), dst, n); return;
    case DType::Q5_0: dequantize_q5_0(static_cast<const BlockQ5_0*>(src), dst, n); return;
    case DType::Q5_1: dequantize_q5_1(static_cast<const BlockQ5_1*>(src), dst, n); return;
    case DType::Q2_K: dequantize_q2_k(static_cast<const BlockQ2_K*>(src), dst, n); return;
    case DType::Q3_K: dequantize_q3_k(static_cast<const BlockQ3_K*>(src), dst, n); return;
    case DType::Q4_K: dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, n); return;
    case DType::Q5_K: dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, n); return;
    case DType::Q6_K: dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, n); return;
    case DType::IQ4_NL: dequantize_iq4_nl(static_cast<const BlockIQ4_NL*>(src), dst, n); return;
    case DType::IQ4_XS: dequantize_iq4_xs(static_cast<const BlockIQ4_XS*>(src), dst, n); return;
    case DType::Packed: break;  // Tensor::to_f32 asks the tensor's decoder
  }
  throw Error("", "packed values have no byte layout: decode them through their tensor");
}

void from_f32(DType t, const float* src, void* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: f32_to_f16_row(src, static_cast<uint16_t*>(dst), n); return;
    case DType::BF16: f32_to_bf16_row(src, static_cast<uint16_t*>(dst), n); return;
    case DType::Q8_0: quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), n); return;
    case DType::Q4_0: quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), n); return;
    case DType::Q4_1: quantize_q4_1(src, static_cast<BlockQ4_1*>(dst), n); return;
    case DType::Q5_0: quantize_q5_0(src, static_cast<BlockQ5_0*>(dst), n); return;
    case DType::Q5_1: quantize_q5_1(src, static_cast<BlockQ5_1*>(dst), n); return;
    case DType::Q4_K: quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), n); return;
    case DType::Q5_K: quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), n); return;
    case DType::Q6_K: quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), n); return;
    default: throw Error("", "cannot convert f32 to " + std::string(dtype_name(t)));
  }
}

}  // namespace mcw
