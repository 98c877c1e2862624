// Products with a weight in compressed-tensors' row-packed layout (RowPackedCodes,
// engine/core/tensor.h), read where it lies: Y[m, n] (+)= X[m, k] · Wᵀ (+ bias[n]), m <= 8.
//
// Each output row's codes are contiguous: a line of 16 words (64 bytes; 8 words on AVX2)
// holds 16·(32 / bits) inputs, code k of word l being input (32 / bits)·l + k. The
// activations are rearranged once per product in that order, so the k-th codes of a
// line's words meet as many activations in one FMA. Each code is dequantised in registers to the decoder's value ((code − zero)·
// scale, rounded to the scales' dtype) with the row's parameters from
// TensorDecoder::row_parameters: the exact f32 product up to summation order. AVX-512 and
// AVX2, rows a whole number of lines, groups whole lines or whole words dividing a line
// (then each line's scales are gathered per lane); false otherwise (the caller decodes
// tiles).
#pragma once
#include <cstdint>

#include "engine/core/tensor.h"

namespace mcw {

constexpr int64_t kRowPackedMaxM = 8;

// True (and Y written) when this CPU has the path and reads the layout; false leaves Y
// untouched. m <= 8 on f32 activations; any m on int8 activations (AVX2, stored_matmul.h's
// switch; row_packed_gemv_i8_avx2.cpp). std::invalid_argument on a negative m or short
// leading dimensions.
bool gemv_row_packed(const RowPackedCodes& w, const TensorDecoder& params, const float* X,
                     int64_t ldx, float* Y, int64_t ldy, int64_t m, const float* bias = nullptr,
                     bool accumulate = false);

}  // namespace mcw
