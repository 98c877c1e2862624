// Products with a weight in GPTQ's column-packed layout (ColumnPackedCodes,
// engine/core/tensor.h), read where it lies: Y[m, n] (+)= X[m, k] · Wᵀ (+ bias[n]).
//
// GPTQ packs each output's codes down a column of int32 words, so 16 neighbouring outputs'
// words for 32 / bits inputs are one 64-byte line. Each task takes 16 outputs at a time:
// their scales and zero points per group are widened to f32 once, then for every input
// the 16 codes are shifted out of the line, dequantised as the checkpoint's decoder does
// (s·(q − z), rounded to the scales' dtype) and multiplied into the 16 outputs of every row
// of x. The weights are the decoder's values exactly, so the result is the exact f32
// product up to summation order, at the cost of reading the codes once: no f32 tile.
// AWQ's layout (codes packed along the outputs, 4-bit) runs the same way over lines of 128
// outputs, one accumulator per nibble position. AVX-512 (16 outputs per vector) and AVX2
// (8); false elsewhere (the caller decodes tiles). On int8 activations, GPTQ layers without
// act-order take integer dot products instead (column_packed_gemv_i8_avx2.cpp, AVX2).
#pragma once
#include <cstdint>

#include "engine/core/tensor.h"

namespace mcw {

constexpr int64_t kColumnPackedMaxM = 8;

// True (and Y written) when this CPU has the path and the layout is one it reads; false
// leaves Y untouched. m <= 8 on f32 activations; any m on int8 activations (GPTQ without
// act-order on AVX2, stored_matmul.h's switch), 8 rows at a time. std::invalid_argument on
// a negative m or short leading dimensions.
bool gemv_column_packed(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y,
                        int64_t ldy, int64_t m, const float* bias = nullptr,
                        bool accumulate = false);

}  // namespace mcw
