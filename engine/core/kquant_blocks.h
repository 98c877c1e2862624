// Decoders for the ggml block formats llama.cpp writes beyond Q8_0/Q4_0/Q4_1 (blocks.h):
// the 5-bit legacy types, the K-quants (super-blocks of 256 values with 6- or 8-bit
// sub-block scales) and the non-linear IQ4 types. Byte layouts are GGUF's; each decoder
// does ggml's float operations in ggml's order, so the values are bit for bit those of
// ggml's dequantize_row_* (checked in tests/engine/test_kquant_blocks.cpp by packing known
// parameters, and once against ggml itself: docs/PERFORMANCE.md has no claim on these).
//   Q5_0   32 values, 22 B: f16 d, 32 high bits, 16 B nibbles     x = d·(q − 16)
//   Q5_1   32 values, 24 B: f16 d, f16 m, 32 high bits, nibbles   x = d·q + m
//   Q2_K  256 values, 84 B: 16 scale/min nibble pairs, 2-bit q, f16 d, f16 dmin
//   Q3_K  256 values, 110 B: high-bit mask, 2-bit q, 16 6-bit scales (12 B), f16 d
//   Q4_K  256 values, 144 B: f16 d, f16 dmin, 8 6-bit scale/min pairs (12 B), nibbles
//   Q5_K  256 values, 176 B: as Q4_K plus 32 B of fifth bits
//   Q6_K  256 values, 210 B: low nibbles, 2 high bits, 16 int8 scales, f16 d
//   IQ4_NL 32 values, 18 B: f16 d, nibbles indexing a fixed 16-value non-linear grid
//   IQ4_XS 256 values, 136 B: f16 d, 8 6-bit sub-block scales, nibbles into that grid
#pragma once
#include <cstddef>
#include <cstdint>

namespace mcw {

constexpr int kSuperBlock = 256;  // ggml's QK_K

struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
struct BlockIQ4_NL { uint16_t d; uint8_t qs[16]; };
struct BlockIQ4_XS { uint16_t d, scales_h; uint8_t scales_l[4]; uint8_t qs[128]; };
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 && sizeof(BlockQ2_K) == 84 &&
              sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 &&
              sizeof(BlockQ6_K) == 210 && sizeof(BlockIQ4_NL) == 18 && sizeof(BlockIQ4_XS) == 136);

// The 16 values IQ4_NL and IQ4_XS index (ggml's kvalues_iq4nl).
extern const int8_t kIq4Grid[16];

// n values from n / (values per block) blocks; n a multiple of the block's values.
void dequantize_q5_0(const BlockQ5_0* in, float* y, size_t n);
void dequantize_q5_1(const BlockQ5_1* in, float* y, size_t n);
void dequantize_q2_k(const BlockQ2_K* in, float* y, size_t n);
void dequantize_q3_k(const BlockQ3_K* in, float* y, size_t n);
void dequantize_q4_k(const BlockQ4_K* in, float* y, size_t n);
void dequantize_q5_k(const BlockQ5_K* in, float* y, size_t n);
void dequantize_q6_k(const BlockQ6_K* in, float* y, size_t n);
void dequantize_iq4_nl(const BlockIQ4_NL* in, float* y, size_t n);
void dequantize_iq4_xs(const BlockIQ4_XS* in, float* y, size_t n);

// Encoders (kquant_encode.cpp): for any finite f32 input, byte for byte the blocks ggml's
// quantize_row_*_ref writes, i.e. what llama-quantize writes without an importance matrix.
// (With NaN inputs the codes depend on which NaN payload the compiler lets win.)
// n values into n / (values per block) blocks; n a multiple of the block's values.
void quantize_q5_0(const float* x, BlockQ5_0* out, size_t n);
void quantize_q5_1(const float* x, BlockQ5_1* out, size_t n);
void quantize_q4_k(const float* x, BlockQ4_K* out, size_t n);
void quantize_q5_k(const float* x, BlockQ5_K* out, size_t n);
void quantize_q6_k(const float* x, BlockQ6_K* out, size_t n);

// Q4_K / Q5_K: sub-block j's 6-bit scale and min from the 12 packed bytes.
void kquant_scale_min(int j, const uint8_t* packed, uint8_t& scale, uint8_t& min);

}  // namespace mcw
