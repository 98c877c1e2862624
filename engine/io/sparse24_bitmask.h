// compressed-tensors' `sparse-24-bitmask` layout of one 2:4 sparse linear <p> [rows, cols]
// (Sparse24BitMaskCompressor, compressors/sparse_compressors/sparse_24_bitmask.py):
//   <p>.shape       I64 [2, 1]: rows, cols;
//   <p>.compressed  [rows, cols/2] in the weight's dtype: the 2 flagged values of every
//                   aligned group of 4 along a row, in column order;
//   <p>.bitmask     U8 [rows, ceil(cols/8)]: per row, bit c%8 of byte c/8 flags column c
//                   (numpy.packbits(..., axis=-1, bitorder="little"): LSB first, each row
//                   padded to whole bytes).
// The writer flags exactly 2 of every 4 (topk(2) of |w| per group), so a group with fewer
// than 2 nonzeros flags zeros as well; which zeros is left to torch's topk, and any choice
// decodes to the same matrix: W[r, c] = flagged ? next compressed value of row r : 0.
// Quantised layers (FP8, INT8 with weight_scale beside) compress their codes the same way.
#pragma once
#include <cstdint>
#include <string>

#include "engine/core/tensor.h"

namespace mcw {

// Why the row-major [rows, cols] `values` (F16, BF16 or F32) have no sparse-24-bitmask form
// (a group of 4 with more than 2 nonzeros, cols not a multiple of 4); empty when they have.
std::string sparse24_unfit(DType dtype, int64_t rows, int64_t cols, const void* values);

// The parts of such values: `compressed` [rows, cols/2] in `dtype`, `bitmask` [rows,
// ceil(cols/8)]. In each group the nonzeros are flagged, then the group's −0s, then its
// first +0s, so that every value reads back bit for bit (a −0 in a group with two
// nonzeros besides reads back as +0). Requires sparse24_unfit() to be empty.
void sparse24_compress(DType dtype, int64_t rows, int64_t cols, const void* values,
                       void* compressed, uint8_t* bitmask);

// A sparse-24-bitmask layer of `file` read back: float `compressed` values give a Packed
// [rows, cols] tensor decoded from the parts on demand; I8 or F8_E4M3 codes (a quantised
// layer) give an owned dense tensor of those codes for the quantised reader to scale.
// Throws mcw::Error naming `file` and the tensor for missing parts, a shape tensor that is
// not two positive integers, parts of the wrong dtype or size, and any group of 4 that
// does not flag exactly 2 values (so a bitmask can never index past `compressed`).
Tensor read_sparse24(const std::string& file, const std::string& prefix, const Tensor* shape,
                     const Tensor* compressed, const Tensor* bitmask);

}  // namespace mcw
