// GPTQ (gptq.h) with a ggml block type as its quantiser grid: a weight re-quantised for a
// GGUF file with calibration data, the way llama-quantize uses an importance matrix but
// with GPTQ's error feedback. Columns are swept in order (block formats group contiguous
// columns, so there is no act-order); when the sweep reaches the first column of a block,
// the block's parameters (scales, mins, K-quant sub-block scales) are fitted to the row's
// current, error-updated values by the type's importance-weighted encoder (from_f32_weighted,
// each column weighted by its diag XᵀX, as llama-quantize --imatrix weighs by mean x²), as
// GPTQ fits a group's grid when its first column comes; every column is then rounded to the
// nearest value of that grid (block_code_grid.h) and its error spread over the later
// columns through the upper Cholesky factor of H⁻¹. Lazy blocks of max(128, block values)
// columns, the rest updated by one GEMM per block, as gptq.cpp does.
// Dead columns (diag 0) get weight 0; dampening as factor_dampened (hessian_factor.h).
// Types: those with a code grid (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/compress/hessian_factor.h"
#include "engine/compress/layer_stats.h"
#include "engine/core/dtype.h"
#include "engine/core/progress.h"

namespace mcw {

struct BlockGptqOptions {
  double percdamp = 0.01;
  double factor_tolerance = 1e-3;  // as GptqOptions::factor_tolerance
  bool weighted_fit = true;        // false: blocks fitted by the unweighted reference encoder
};

struct BlockGptqResult {
  std::vector<std::byte> blocks;  // rows × (cols / block values) blocks of `type`, row-major
  double percdamp = 0;            // the dampening that made H positive definite
  HessianFactorReport factor;
};

// w [rows, cols] f32, cols a multiple of the type's block values; stats.xtx = XᵀX [cols, cols].
// Throws mcw::Error naming `name` for a type without a code grid, mismatched statistics or
// a Hessian no dampening makes positive definite; mcw::Cancelled on cancel.
BlockGptqResult quantize_gptq_blocks(const float* w, int64_t rows, int64_t cols,
                                     const LayerStats& stats, DType type,
                                     const BlockGptqOptions& opt = {},
                                     const CancelToken* cancel = nullptr,
                                     const std::string& name = {});

}  // namespace mcw
