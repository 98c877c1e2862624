// Row-wise building blocks of transformer layers, shared by inference and training.
// All row-major f32; parallel over rows where rows are many.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/model/llama_config.h"

namespace mcw {

// y[r] = x[r] / sqrt(mean(x[r]²) + eps) * w, for `rows` rows of `dim`; each row's scale
// 1 / sqrt(...) also goes to inv_rms[r] when given (training keeps it for the backward pass).
void rmsnorm_rows(const float* x, const float* w, float* y, int64_t rows, int64_t dim, double eps,
                  float* inv_rms = nullptr);

// y[r] = (x[r] - mean(x[r])) / sqrt(var(x[r]) + eps) * w + b (LayerNorm, biased variance).
void layernorm_rows(const float* x, const float* w, const float* b, float* y, int64_t rows,
                    int64_t dim, double eps);

// Inverse frequencies of the rotary embedding (head_dim / 2 values), with Llama 3 scaling;
// with LongRoPE, divided by the short factors, or by the long ones for a forward call that
// reaches past original_max_position (`seq_len`: its last position + 1), as transformers'
// longrope update chooses them per call.
std::vector<float> rope_inv_freq(const LlamaConfig& cfg, int64_t seq_len = 0);

// Rotates `n_heads` heads of one row in HF's rotate-half layout for position `pos`:
// (x[i], x[i + d/2]) -> (x[i] cos - x[i + d/2] sin, x[i] sin + x[i + d/2] cos).
void rope_row(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, const float* inv_freq,
              bool inverse = false);

// g[i] = silu(g[i]) * u[i]
void silu_mul(float* g, const float* u, int64_t n);

// x[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³))), in place (GPT-2's gelu_new).
void gelu_tanh(float* x, int64_t n);
// x[i] = 0.5 x (1 + erf(x / sqrt(2))), in place (the exact GELU).
void gelu_erf(float* x, int64_t n);

// In-place softmax of one row; returns log of the normaliser (for log-probabilities).
double softmax_row(float* x, int64_t n);

// Per-token symmetric int8 (the activation side of W8A8): a row's scale is max|x| / 127
// (1 for an all-zero row), its codes round(x / scale) clamped to [-127, 127].
float int8_row_scale(const float* x, int64_t n);
// Quantise-dequantise each of `rows` rows of `cols` in place (dynamic fake quantisation).
void fake_quantize_rows_int8(float* x, int64_t rows, int64_t cols);

}  // namespace mcw
