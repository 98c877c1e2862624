// Small-m products straight from 16-bit float weights: Y[m, n] (+)= X[m, k] · Wᵀ (+ bias[n])
// for W [n, k] held as bf16 or f16 bits (usually a view of a memory-mapped file) and m <= 8
// rows of f32 activations. Each weight row is read once and widened to f32 in registers
// (bf16 is a 16-bit shift, f16 an F16C convert), then multiplied in f32 against every row
// of x: the decode product streams the file's bytes, half of what an f32 weight costs,
// with no scratch tile in between. Weights widen exactly, so the result is the f32 product
// of the decoded weight up to f32 summation order.
//
// Rows of W are split over oneTBB tasks of some tens of KiB of weight each; the SIMD path
// (AVX-512, AVX2+FMA+F16C or portable C++) follows cpu_features().level at the call.
#pragma once
#include <cstdint>

namespace mcw {

enum class HalfFormat { BF16, F16 };

constexpr int64_t kHalfGemvMaxM = 8;

// Rows of W at stride ldw >= k elements; X rows at ldx >= k; Y rows at ldy >= n.
// std::invalid_argument on m outside [0, kHalfGemvMaxM], negative sizes or short strides.
void gemv_wt_half(HalfFormat format, const float* X, int64_t ldx, const uint16_t* W,
                  int64_t ldw, float* Y, int64_t ldy, int64_t m, int64_t n, int64_t k,
                  const float* bias = nullptr, bool accumulate = false);

}  // namespace mcw
