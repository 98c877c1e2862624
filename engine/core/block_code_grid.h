// The grid each value of a ggml block lies on, and the block with other codes under the
// same parameters: for algorithms that fit a block's parameters first and then choose its
// codes themselves (GPTQ on the GGUF grid: engine/compress/block_gptq.h), as GPTQ
// chooses codes on a group's fixed grid.
//
// Value i of a block may take scale·(l − zero) − min for the integer codes lo ≤ l ≤ hi,
// where scale and min come from the block's stored parameters (for the K-quants, of the
// sub-block holding i), formed with ggml's float operations, so that value(l) is bit for
// bit what the block's decoder (blocks.h, kquant_blocks.h) gives for that code:
//   Q8_0   d·q                 q −127..127 (what ggml's encoder writes; −128 is left out)
//   Q4_0   d·(q − 8)           Q5_0  d·(q − 16)
//   Q4_1   d·q + m             Q5_1  the same, q 0..31
//   Q4_K   (d·sc)·q − dmin·m   Q5_K  the same, q 0..31
//   Q6_K   (d·sc)·(q − 32)
#pragma once
#include "engine/core/dtype.h"

namespace mcw {

struct CodeGrid {
  float scale = 0, min = 0;
  int zero = 0, lo = 0, hi = 0;

  // Out of line on purpose: inlined into a caller built for FMA, scale·(l − zero) − min
  // would be contracted to one rounding and differ from the decoders' two.
  float value(int l) const;
  // The code whose value is nearest to v (ties to the lower code); `zero` clamped to
  // [lo, hi] when scale is 0 or anything is not finite.
  int nearest(float v) const;
};

// Whether the type has codes on an affine grid (the list above).
bool has_code_grid(DType t);

// The grid of each of the block's dtype_info(t).block values.
void block_code_grids(DType t, const void* block, CodeGrid* grids);

// Puts codes[i] (within grids[i]'s [lo, hi]) into the block; its parameters are kept.
void set_block_codes(DType t, void* block, const int* codes);

}  // namespace mcw
