// GPTQ (Frantar et al., 2022): quantise a linear layer W [rows = out, cols = in] column by
// column, spreading each column's rounding error over the columns not yet quantised with
// the inverse Hessian of the layer's reconstruction loss ‖WX − ŴX‖², H ∝ XᵀX.
//
// - H is LayerStats::xtx as given (XᵀX). GPTQ's 2XᵀX/n only rescales H, and every step
//   here is invariant to that (dampening is relative to mean diag H).
// - Dead inputs (diag H = 0) get H_jj = 1 and their weights zeroed: they never see input.
// - Dampening: H += percdamp · mean(diag H) · I.
// - U = upper Cholesky factor of H⁻¹ (linalg_f64.h); columns are processed in lazy blocks
//   of block_size: errors update the rest of the block at once, the columns after the
//   block with one GEMM per block.
// - Groups: the grid of a group is computed from the current (error-updated) weights when
//   its first column is reached, as in the column-by-column algorithm.
// - act_order: columns in order of decreasing diag H. Dynamic groups (default) are runs of
//   group_size columns in that order and the result carries g_idx; static_groups computes
//   every group's grid on the original weights in the natural order first, so no g_idx.
// The result's codes are in the original column order.
#pragma once
#include <cstdint>
#include <string>

#include "engine/compress/affine_quantizer.h"
#include "engine/compress/compressed_tensor.h"
#include "engine/compress/layer_stats.h"
#include "engine/core/progress.h"

namespace mcw {

struct GptqOptions {
  int bits = 4;
  bool symmetric = false;
  int64_t group_size = 128;  // 0: one grid per row (per channel)
  double percdamp = 0.01;
  int64_t block_size = 128;
  bool act_order = false;
  bool static_groups = false;
  ClipSearch clip;  // optional MSE clipping when a grid is made (unweighted)
};

CompressedTensor quantize_gptq(const float* w, int64_t rows, int64_t cols, const LayerStats& stats,
                               const GptqOptions& opt, const CancelToken* cancel = nullptr,
                               std::string name = {});

}  // namespace mcw
