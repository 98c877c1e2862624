// Internal: the SIMD paths of the GPTQ/AWQ small-m product (column_packed_gemv_*.cpp) that
// the driver in column_packed_gemv.cpp chooses from. The driver owns validation and
// threading; a path computes the outputs of units [u0, u1) against the m rows of x it is
// given (the f32 paths and GPTQ's int8 path: m <= 8), a unit being `lanes` outputs for
// GPTQ and a line of `lanes` words (8·lanes outputs, the last one possibly shorter) for AWQ.
#pragma once
#include <algorithm>
#include <cstdint>

#include "engine/core/half.h"
#include "engine/core/tensor.h"
#include "engine/kernels/block_gemv.h"

namespace mcw::column_detail {

using UnitsFn = void (*)(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y,
                         int64_t ldy, int64_t m, int64_t u0, int64_t u1, const float* bias,
                         bool accumulate);

// 16 lanes (column_packed_gemv_avx512.cpp; AVX-512 F/BW/VL).
void units_avx512(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y, int64_t ldy,
                  int64_t m, int64_t u0, int64_t u1, const float* bias, bool accumulate);
// 8 lanes (column_packed_gemv_avx2.cpp; AVX2, FMA, F16C).
void units_avx2(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y, int64_t ldy,
                int64_t m, int64_t u0, int64_t u1, const float* bias, bool accumulate);

// AWQ on int8 activations, a unit being 16 words (128 outputs; x in natural order), any m
// (column_packed_gemv_i8_avx2.cpp; AVX2).
void units_i8_awq_avx2(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                       int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate);

// The same with one vpdpbusd per multiply (column_packed_gemv_i8_avx512.cpp; AVX-512 VNNI).
void units_i8_awq_avx512_vnni(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m,
                              float* Y, int64_t ldy, int64_t u0, int64_t u1, const float* bias,
                              bool accumulate);

// GPTQ group g's parameters for outputs [o0, o0 + n), widened to f32 for the int8 kernels:
// s[t] the scale, s[n + t] scale · (zero point − zero_shift) (the AVX2 kernel takes 8-bit
// codes as q − 128). kBits = w.bits.
template <int kBits>
void gptq_group_parameters(const ColumnPackedCodes& w, int64_t g, int64_t o0, int64_t n,
                           float zero_shift, float* s) {
  if (w.scale_dtype == DType::F16)
    f16_to_f32_row(static_cast<const uint16_t*>(w.scales) + g * w.out + o0, s, size_t(n));
  else
    std::copy_n(static_cast<const float*>(w.scales) + g * w.out + o0, n, s);
  const uint32_t* qz = w.qzeros + g * w.zero_words;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t bit = (o0 + t) * kBits;
    const float z = float((qz[bit >> 5] >> (bit & 31)) & ((1u << kBits) - 1)) + w.zero_offset;
    s[n + t] = s[t] * (z - zero_shift);
  }
}

using I8UnitsFn = void (*)(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m,
                           float* Y, int64_t ldy, int64_t u0, int64_t u1, const float* bias,
                           bool accumulate);

// GPTQ without act-order on int8 activations (x per word row and plane of its bytes: see
// column_packed_gemv.cpp), 8 outputs a unit (column_packed_gemv_i8_avx2.cpp; AVX2).
void units_i8_avx2(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m, float* Y,
                   int64_t ldy, int64_t u0, int64_t u1, const float* bias, bool accumulate);
// The same with 16 outputs a unit (column_packed_gemv_i8_avx512.cpp; AVX-512 VNNI).
void units_i8_avx512_vnni(const ColumnPackedCodes& w, const PackedActivations* x, int64_t m,
                          float* Y, int64_t ldy, int64_t u0, int64_t u1, const float* bias,
                          bool accumulate);

}  // namespace mcw::column_detail
