#include "engine/kernels/ops.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/model/rope_freq_factors.h"

namespace mcw {

void rmsnorm_rows(const float* x, const float* w, float* y, int64_t rows, int64_t dim, double eps,
                  float* inv_rms) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const float scale = float(1.0 / std::sqrt(ss / double(dim) + eps));
    if (inv_rms) inv_rms[r] = scale;
    for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * scale * w[i];
  });
}

void layernorm_rows(const float* x, const float* w, const float* b, float* y, int64_t rows,
                    int64_t dim, double eps) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double sum = 0;
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const double mean = sum / double(dim);
    double ss = 0;  // two passes: the one-pass formula cancels badly for large means
    for (int64_t i = 0; i < dim; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
    const float scale = float(1.0 / std::sqrt(ss / double(dim) + eps)), m = float(mean);
    for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - m) * scale * w[i] + b[i];
  });
}

std::vector<float> rope_inv_freq(const LlamaConfig& cfg, int64_t seq_len) {
  const int64_t half = cfg.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const RopeScaling& s = cfg.rope_scaling;
  const LongRope& lr = cfg.long_rope;
  const std::vector<double>& factor =
      seq_len > lr.original_max_position ? lr.long_factor : lr.short_factor;
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(cfg.rope_theta, double(2 * i) / double(cfg.head_dim));
    if (lr.enabled()) f /= factor[size_t(i)];
    // Llama 3: slow down only the long wavelengths, blend in between.
    if (s.enabled) f /= llama3_rope_divisor(s, 2 * std::numbers::pi / f);
    inv[size_t(i)] = float(f);
  }
  return inv;
}

void rope_row(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, const float* inv_freq,
              bool inverse) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double angle = double(pos) * double(inv_freq[i]);
    const float c = float(std::cos(angle)), s = float(inverse ? -std::sin(angle) : std::sin(angle));
    for (int64_t h = 0; h < n_heads; ++h) {
      float* xh = x + h * head_dim;
      const float a = xh[i], b = xh[i + half];
      xh[i] = a * c - b * s;
      xh[i + half] = a * s + b * c;
    }
  }
}

void silu_mul(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void gelu_tanh(float* x, int64_t n) {
  const float k = float(std::sqrt(2.0 / std::numbers::pi));
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void gelu_erf(float* x, int64_t n) {
  const float k = float(1.0 / std::numbers::sqrt2);
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * k));
}

double softmax_row(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
  return double(mx) + std::log(sum);
}

float int8_row_scale(const float* x, int64_t n) {
  float m = 0;
  for (int64_t c = 0; c < n; ++c) m = std::max(m, std::fabs(x[c]));
  return m > 0 ? m / 127.0f : 1.0f;
}

void fake_quantize_rows_int8(float* x, int64_t rows, int64_t cols) {
  tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
    float* xr = x + r * cols;
    const float s = int8_row_scale(xr, cols);
    for (int64_t c = 0; c < cols; ++c)
      xr[c] = std::clamp(std::nearbyint(xr[c] / s), -127.0f, 127.0f) * s;
  });
}

}  // namespace mcw
