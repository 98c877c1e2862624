// MCW's own codes written as GGUF blocks, unchanged, where a compressed layer is exactly a
// ggml 32-value type: affine, groups of 32 along the row, f16 scales, no act-order, mask,
// outliers or input scale, and
//   8 bits, zero 128  → Q8_0  (qs = q − 128)         4 bits, zero 8  → Q4_0
//   5 bits, zero 16   → Q5_0                          4/5 bits, integer zero z with −s·z an
//                                                     f16 → Q4_1/Q5_1 (m = −s·z)
// The decoded values are then MCW's own bit for bit (s·(q − z) and ggml's d·(q − 8) or
// d·q + m are the same exact f32 products), where re-quantising them with ggml's encoder
// would pick other scales and add error. The K-quants' 6-bit sub-block scales cannot hold
// MCW's f16 group scales, so those are always re-quantised.
#pragma once
#include <string>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/dtype.h"

namespace mcw {

// Empty when t's codes are exactly blocks of `type`, else why not (for the report).
std::string gguf_codes_misfit(const CompressedTensor& t, DType type);
// Row r of t as `type` blocks (t must fit): cols / 32 blocks to dst.
void gguf_codes_row(const CompressedTensor& t, DType type, int64_t r, void* dst);

}  // namespace mcw
