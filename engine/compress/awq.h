// AWQ (Lin et al., 2023): activation-aware per-input-channel scaling before quantisation.
// Channels that see large activations matter more, so they are scaled up before rounding:
// with s_j = mean_n |X_nj|^α (normalised by √(max s · min s)), the layer computes
// X·Wᵀ = (X·diag(1/s))·(W·diag(s))ᵀ, and W·diag(s) is quantised. α is searched over a grid
// by the layer output error on the calibration activations; α = 0 gives s = 1, i.e. RTN.
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
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/compress/layer_stats.h"
#include "engine/core/progress.h"

namespace mcw {

struct AwqLayer {
  const float* w;  // [rows, cols], cols shared by all layers of one call
  int64_t rows;
  std::string name;
};

struct AwqOptions {
  int bits = 4;
  bool symmetric = false;
  int64_t group_size = 128;
  int grid = 20;  // α = k/(grid − 1), k = 0..grid−1 (both ends included); grid 1: α = 0 only
  // AWQ's clipping search after scaling: per row and group, the range shrink in
  // {1, 1 − clip_step, ..., clip_min_shrink} with the least output error on the group's
  // calibration inputs.
  bool clip = false;
  float clip_min_shrink = 0.5f;
  float clip_step = 0.025f;
};

struct AwqResult {
  std::vector<float> input_scale;        // s [cols]
  float alpha = 0;                       // chosen exponent
  std::vector<CompressedTensor> layers;  // codes of W·diag(s), one per AwqLayer
  double error = 0;  // Σ layers ‖X·Wᵀ − X·ŵᵀ‖²_F at the chosen α (before clipping)
  double error_rtn = 0;  // the same at α = 0 (plain RTN)
};

// x: calibration activations [n, cols]. Checks cancel between grid points and rows.
AwqResult quantize_awq(const std::vector<AwqLayer>& layers, const float* x, int64_t n, int64_t cols,
                       const AwqOptions& opt, const CancelToken* cancel = nullptr);

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
