// Internal: the SIMD paths of the compressed-tensors small-m product (row_packed_gemv_*.cpp)
// that the driver in row_packed_gemv.cpp chooses from. The driver owns validation, the
// activations' line order (xs: m rows of w.in, per line of `lanes` words) and threading; a
// path computes output rows [r0, r1) against all m (<= 8) rows.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/core/tensor.h"
#include "engine/kernels/block_gemv.h"

namespace mcw::row_detail {

// One output row's parameters per group as the kernels use them: scales, and zero codes as
// f32 less `zero_shift` (8-bit int8 kernels take codes as q − 128). One per thread.
struct RowParameters {
  std::vector<float> scale, zero;
  std::vector<int32_t> code;
  void load(const TensorDecoder& params, int64_t o, int64_t groups, int zero_shift = 0) {
    scale.resize(size_t(groups)), zero.resize(size_t(groups)), code.resize(size_t(groups));
    params.row_parameters(o, scale.data(), code.data());
    for (int64_t g = 0; g < groups; ++g) zero[size_t(g)] = float(code[size_t(g)] - zero_shift);
  }
};

using RowsFn = void (*)(const RowPackedCodes& w, const TensorDecoder& params, const float* xs,
                        float* Y, int64_t ldy, int64_t m, int64_t r0, int64_t r1, const float* bias,
                        bool accumulate);

// Lines of 16 words (row_packed_gemv_avx512.cpp; AVX-512 F/BW/VL).
void rows_avx512(const RowPackedCodes& w, const TensorDecoder& params, const float* xs, float* Y,
                 int64_t ldy, int64_t m, int64_t r0, int64_t r1, const float* bias,
                 bool accumulate);
// Lines of 8 words (row_packed_gemv_avx2.cpp; AVX2, FMA, F16C).
void rows_avx2(const RowPackedCodes& w, const TensorDecoder& params, const float* xs, float* Y,
               int64_t ldy, int64_t m, int64_t r0, int64_t r1, const float* bias, bool accumulate);

using I8RowsFn = void (*)(const RowPackedCodes& w, const TensorDecoder& params,
                          const PackedActivations* x, int64_t m, float* Y, int64_t ldy, int64_t r0,
                          int64_t r1, const float* bias, bool accumulate);

// On int8 activations (x per span of 8 words in the order a load's planes meet the codes:
// see row_packed_gemv.cpp), rows [r0, r1) against any m rows (row_packed_gemv_i8_avx2.cpp;
// AVX2).
void rows_i8_avx2(const RowPackedCodes& w, const TensorDecoder& params, const PackedActivations* x,
                  int64_t m, float* Y, int64_t ldy, int64_t r0, int64_t r1, const float* bias,
                  bool accumulate);

// The same with spans of 16 words (row_packed_gemv_i8_avx512.cpp; AVX-512 VNNI).
void rows_i8_avx512_vnni(const RowPackedCodes& w, const TensorDecoder& params,
                         const PackedActivations* x, int64_t m, float* Y, int64_t ldy, int64_t r0,
                         int64_t r1, const float* bias, bool accumulate);

}  // namespace mcw::row_detail
