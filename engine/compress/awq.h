// AWQ (Lin et al., 2023): activation-aware per-input-channel scaling before quantisation.
// Channels that see large activations matter more, so they are scaled up before rounding:
// with s_j = mean_n |X_nj|^α (normalised by √(max s · min s)), the layer computes
// X·Wᵀ = (X·diag(1/s))·(W·diag(s))ᵀ, and W·diag(s) is quantised. α is searched over
// k/grid, k = 0..grid−1 (0 … 0.95 for AWQ's 20), by the error of the output of the module
// the layers feed: the whole attention for q/k/v and the whole MLP for gate/up, as the
// reference's module2inspect (an AwqModuleLoss the caller supplies), or each layer's own
// output (o_proj, down_proj); α = 0 gives s = 1, i.e. RTN. Then AWQ's clipping search
// (auto_clip_layer): per row and group, the weights clamped to ±max|w|·shrink, shrink in
// 1, 0.95, …, 0.55, by the group's output error on ~512 of the calibration tokens; q and
// k are not clipped (the caller clears AwqLayer::clip), as in the reference.
//
// What the caller gets, and must do:
// - CompressedTensor per layer holding the codes of W·diag(s), its input_scale left empty:
//   dequantize() ≈ W·diag(s).
// - input_scale = s, rounded to f16 where that is a normal f16 (storage counts 16 bits per
//   entry). Setting a layer's CompressedTensor::input_scale to s makes it self-describing:
//   its dequantize() is then the effective weight below (compress_llama does this, and
//   packed kernels divide their input by s). The input of these layers must be divided by
//   s, which is free when it is folded into the op before them (RMSNorm weight /= s; for
//   o_proj, v_proj's rows; for down_proj, up_proj's rows). Layers that share an input (q/k/v, gate/up) are
//   searched together and get one s.
// - awq_effective_weight() gives dequantize()·diag(1/s), the f32 weight to use with the
//   ORIGINAL input when no folding is possible (an error check, or a dense fallback).
// - To follow AWQ with GPTQ instead of RTN: scale W's columns by s and the statistics with
//   scale_layer_stats(), then run quantize_gptq on the scaled layer.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/compress/affine_quantizer.h"
#include "engine/compress/compressed_tensor.h"
#include "engine/compress/layer_stats.h"
#include "engine/core/progress.h"

namespace mcw {

struct AwqLayer {
  const float* w;  // [rows, cols], cols shared by all layers of one call
  int64_t rows;
  std::string name;
  bool clip = true;  // with AwqOptions::clip; false for q/k (attention scores)
};

struct AwqOptions {
  int bits = 4;
  bool symmetric = false;
  int64_t group_size = 128;
  int grid = 20;  // α = k/grid, k = 0..grid−1; grid 1: α = 0 only
  // AWQ's clipping search after scaling: per row and group, the clamp ±max|w|·shrink,
  // shrink in {1, 1 − clip_step, ..., clip_min_shrink}, with the least output error on
  // clip_tokens of the group's calibration inputs (every (n / clip_tokens)-th row).
  bool clip = false;
  float clip_min_shrink = 0.55f;
  float clip_step = 0.05f;
  int64_t clip_tokens = 512;
};

// The loss of one candidate of the scale search: the squared error of the output of the
// module the layers feed, given each layer's effective weight Q(W·s)/s (f32 [rows, cols],
// in the order of the layers). Empty: the layers' own outputs on x, summed.
using AwqModuleLoss = std::function<double(const std::vector<const float*>& effective)>;

struct AwqResult {
  std::vector<float> input_scale;        // s [cols]
  float alpha = 0;                       // chosen exponent
  std::vector<CompressedTensor> layers;  // codes of W·diag(s), one per AwqLayer
  double error = 0;      // the search's loss at the chosen α (before clipping)
  double error_rtn = 0;  // the same at α = 0 (plain RTN)
};

// x: calibration activations [n, cols]. Checks cancel between grid points and rows.
AwqResult quantize_awq(const std::vector<AwqLayer>& layers, const float* x, int64_t n, int64_t cols,
                       const AwqOptions& opt, const CancelToken* cancel = nullptr,
                       const AwqModuleLoss& module_loss = {});

// AWQ's clipped grid for one group: [lo, hi] = [min(0, min w), max(0, max w)] clamped to
// ±max(−lo, hi)·shrink (both ends clamped at the same magnitude, not shrunk in proportion).
AffineParams awq_clip_params(float lo, float hi, int bits, bool symmetric, float shrink);

// The scales of one α, without search (α in [0, 1]).
std::vector<float> awq_scales(const float* x, int64_t n, int64_t cols, float alpha);

// s rounded to f16 in place, entry by entry, where the result is a finite normal f16.
void round_scales_to_f16(std::vector<float>& s);

// dequantize()·diag(1/s): the weight to multiply the original input with, i.e. the
// dequantize() of `scaled` with input_scale = s. `scaled` must have no input_scale yet.
Tensor awq_effective_weight(const CompressedTensor& scaled, const std::vector<float>& s);

// W·diag(s) for W [rows, cols].
std::vector<float> scaled_columns(const float* w, int64_t rows, int64_t cols,
                                  const std::vector<float>& s);

// Statistics of X·diag(1/s) from those of X.
LayerStats scale_layer_stats(const LayerStats& stats, const std::vector<float>& s);

}  // namespace mcw
