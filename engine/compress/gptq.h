// GPTQ (Frantar et al., 2022): quantise a linear layer W [rows = out, cols = in] column by
// column, spreading each column's rounding error over the columns not yet quantised with
// the inverse Hessian of the layer's reconstruction loss ‖WX − ŴX‖², H ∝ XᵀX.
//
// - H is LayerStats::xtx as given (XᵀX). GPTQ's 2XᵀX/n only rescales H, and every step
//   here is invariant to that (dampening is relative to mean diag H).
// - Dead inputs (diag H = 0) get H_jj = 1 and their weights zeroed: they never see input.
// - Dampening: H += percdamp · mean(diag H) · I. When the dampened H is still not positive
//   definite, percdamp is raised (+0.01, +0.02, +0.04, … up to 1, as GPTQModel's
//   damp_auto_increment does) and the value that worked is reported; only when that too
//   fails is the layer refused.
// - U = upper Cholesky factor of H⁻¹, in f32 as the reference, checked, f64 when the f32
//   factor is not accurate (hessian_factor.h); columns are processed in lazy blocks
//   of block_size: errors update the rest of the block at once, the columns after the
//   block with one GEMM per block.
// - Groups: the grid of a group is computed from the current (error-updated) weights when
//   its first column is reached, as in the column-by-column algorithm.
// - act_order: columns in order of decreasing diag H. Dynamic groups (default) are runs of
//   group_size columns in that order and the result carries g_idx; static_groups computes
//   every group's grid on the original weights in the natural order first, so no g_idx.
//   Both default to off, as in the reference (and AutoGPTQ's desc_act / static_groups).
// - Outliers (SpQR, Dettmers et al., 2023), decided inside the column loop: a weight whose
//   scaled error ((w − ŵ)/U_kk)², the increase of the layer loss that quantising it causes,
//   exceeds the threshold is kept as it stands at that moment (in f16) instead of being
//   rounded, so it adds (almost) nothing to the error spread over later columns. Each grid
//   is fitted without the weights of its group whose leave-one-out gain (the drop of the
//   group's scaled error when the grid is fitted without them) exceeds the same threshold;
//   they are replaced by the mean of the rest for the fit. The threshold is SpQR's:
//   outlier_threshold · mean_c(var W[:,c] / U_cc²).
// The result's codes are in the original column order.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "engine/compress/affine_quantizer.h"
#include "engine/compress/compressed_tensor.h"
#include "engine/compress/hessian_factor.h"
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
  // SpQR's relative outlier threshold (its LLaMA settings use 0.2); inf: no outliers.
  double outlier_threshold = INFINITY;
  // MCW's option, used when outlier_threshold is inf: about this share of the weights kept
  // (within 5 % when four tries reach it). The threshold is taken from a plain GPTQ
  // sweep's scaled errors at a rank that is corrected after each SpQR sweep (which keeps
  // fewer than the plain scores say: every kept weight stops its error from spreading).
  // Costs two to five sweeps instead of one.
  double outlier_fraction = 0;
  // The f32 factor of H⁻¹ is used when its residual is at most this (hessian_factor.h),
  // else the factor is made in f64; 0: always f64.
  double factor_tolerance = 1e-3;
};

// What a run chose, for the run log.
struct GptqReport {
  double percdamp = 0;           // the dampening that made H positive definite
  double outlier_threshold = 0;  // relative, as in GptqOptions (inf: none)
  uint64_t outliers = 0;
  HessianFactorReport factor;
};

CompressedTensor quantize_gptq(const float* w, int64_t rows, int64_t cols, const LayerStats& stats,
                               const GptqOptions& opt, const CancelToken* cancel = nullptr,
                               std::string name = {}, GptqReport* report = nullptr);

// SpQR's leave-one-out gain of each of the n weights of one row's group: the scaled error
// Σ_i ((x_i − q(x_i))/d_i)² of the group on its min-max grid, minus the same sum over the
// other weights on the grid fitted without x_j. With a min-max grid only the unique
// extremes move it, so every other weight's gain is its own scaled error.
void spqr_leave_one_out_gain(const float* x, const float* d, int64_t n, int bits, bool symmetric,
                             double* gain);

}  // namespace mcw
