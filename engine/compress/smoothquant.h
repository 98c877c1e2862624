// SmoothQuant (Xiao et al., 2022): move activation outliers into the weights before W8A8.
// With per-input-channel s_j = max|X_j|^α / max|W_j|^(1−α), the layer computes
// X·Wᵀ = (X·diag(1/s))·(W·diag(s))ᵀ; the smoothed activations have flatter channels, so
// per-token int8 loses less, while the weights (per-channel int8) absorb the range.
// As with AWQ, 1/s is folded into the op that produces X (RMSNorm weight /= s).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"
#include "engine/kernels/ops.h"  // fake_quantize_rows_int8, the same rounding at inference

namespace mcw {

// max_r |W[r][j]| per input column j of W [rows, cols].
std::vector<float> column_max_abs(const float* w, int64_t rows, int64_t cols);

// s_j = act_max_j^α / weight_max_j^(1−α), α in [0, 1]. For layers sharing an input (q/k/v),
// pass the elementwise max of their column_max_abs. Channels with a zero maximum on either
// side, or a non-finite result, keep s_j = 1 (nothing to balance). Clamped to ≥ 1e-5.
std::vector<float> smoothquant_scales(const std::vector<float>& act_max,
                                      const std::vector<float>& weight_max, float alpha);

// In place: W[:, j] *= s_j, and X[:, j] /= s_j.
void smooth_weight(float* w, int64_t rows, int64_t cols, const std::vector<float>& s);
void smooth_activations(float* x, int64_t n, int64_t cols, const std::vector<float>& s);

// Per-token (per-row) symmetric int8: scale = max|x_row| / 127, q = round(x/scale) in
// [−127, 127]; an all-zero row gets scale 1.
struct Int8Rows {
  std::vector<int8_t> q;     // [n, cols]
  std::vector<float> scale;  // [n]
};
Int8Rows quantize_rows_int8(const float* x, int64_t n, int64_t cols);

// The W8A8 weight as SmoothQuant's reference makes it (per-channel absmax): per output
// channel scale = max|w| / 127 (rounded to f16, as the reference's fp16 weights have it),
// q = round_half_even(w / scale) in [−127, 127]. Stored as symmetric 8-bit affine codes
// q + 128 (code 128 is zero), so codes − 128 are the int8 values. (MCW's generic symmetric
// grid, rtn.h, uses max|w| / 127.5 and reaches −128; SmoothQuant never does.)
CompressedTensor quantize_weight_w8(const float* w, int64_t rows, int64_t cols,
                                    const CancelToken* cancel = nullptr, std::string name = {});

}  // namespace mcw
