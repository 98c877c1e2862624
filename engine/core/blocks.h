// ggml's block quantisation formats as GGUF stores them. Each block covers 32 values:
//   Q8_0: f16 d, int8 q[32]                     x = d * q
//   Q4_0: f16 d, uint8 qs[16]  (nibbles)        x = d * (q - 8)
//   Q4_1: f16 d, f16 m, uint8 qs[16]            x = d * q + m
// Nibble order: byte j holds value j in its low nibble and value j+16 in its high one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>

#include "engine/core/dtype.h"

namespace mcw {

constexpr int kQBlock = 32;

struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);

// n must be a multiple of 32. Quantisation follows ggml's reference rounding so that
// files MCW writes match what llama.cpp's quantizer would write for the same input.
void quantize_q8_0(const float* x, BlockQ8_0* out, size_t n);
void quantize_q4_0(const float* x, BlockQ4_0* out, size_t n);
void quantize_q4_1(const float* x, BlockQ4_1* out, size_t n);
void dequantize_q8_0(const BlockQ8_0* in, float* y, size_t n);
void dequantize_q4_0(const BlockQ4_0* in, float* y, size_t n);
void dequantize_q4_1(const BlockQ4_1* in, float* y, size_t n);

// Converts n values of any element type to f32 (n a multiple of the block size).
void to_f32(DType t, const void* src, float* dst, size_t n);
// Writes n f32 values as type t (float and block types only; others throw).
void from_f32(DType t, const float* src, void* dst, size_t n);
// Row of `n` values (a multiple of the block size) encoded as ggml encodes it with an
// importance matrix: `importance` holds one non-negative weight per value of the row
// (llama.cpp's imatrix entry for the tensor: mean x_j² over calibration tokens), or is null
// for the unweighted reference encoders (from_f32). Q8_0, F16, BF16, F32 ignore it.
// Byte for byte ggml's quantize_{q4_0,q4_1,q5_0,q5_1,q4_K,q5_K,q6_K}(src, dst, 1, n,
// importance) for finite input (kquant_encode_weighted.cpp). Pass whole tensor rows: the
// legacy types (Q4_0, Q4_1, Q5_0, Q5_1) weigh each value by its row's mean square, so a
// piece of a row encodes as in its row only with `row_mean_square` given (the K-quants
// use each super-block's own).
void from_f32_weighted(DType t, const float* src, void* dst, size_t n, const float* importance,
                       std::optional<float> row_mean_square = std::nullopt);

}  // namespace mcw
