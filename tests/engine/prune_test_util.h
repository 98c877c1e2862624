// Shared by the pruning and low-rank tests: random layers, calibration inputs with the
// structure real activations have (correlated channels, a few outlier channels), and the
// layer output error every method is judged by, computed directly from X.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/core/tensor.h"

namespace prune_test {

inline std::vector<float> gaussian(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline mcw::Tensor weight(int64_t rows, int64_t cols, uint32_t seed) {
  return mcw::Tensor::from_f32(gaussian(size_t(rows * cols), seed), {rows, cols}, "blk.0.w");
}

// X [n, cols]: channels mixed with their neighbours (correlated), and every 16th channel
// (starting at `seed % 16`) scaled by `outlier`, like the massive activations of LLMs.
inline std::vector<float> activations(int64_t n, int64_t cols, uint32_t seed, float outlier) {
  std::vector<float> z = gaussian(size_t(n * (cols + 2)), seed + 1000);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < cols; ++c) {
      const float* zt = &z[size_t(t * (cols + 2) + c)];
      float v = zt[0] + 0.6f * zt[1] + 0.3f * zt[2];
      if (c % 16 == int64_t(seed % 16)) v *= outlier;
      x[size_t(t * cols + c)] = v;
    }
  return x;
}

inline mcw::LayerStats stats_of(const std::vector<float>& x, int64_t cols) {
  mcw::LayerStats s = mcw::make_layer_stats(cols);
  mcw::accumulate(s, x.data(), int64_t(x.size()) / cols);
  return s;
}

// ‖(W - Ŵ)·Xᵀ‖_F in f64, straight from the activations.
inline double output_error(const mcw::Tensor& w, const mcw::Tensor& what,
                           const std::vector<float>& x, int64_t cols) {
  const std::vector<float> a = w.to_f32(), b = what.to_f32();
  const int64_t rows = w.dim(0), n = int64_t(x.size()) / cols;
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < n; ++t) {
      double d = 0;
      for (int64_t c = 0; c < cols; ++c)
        d += (double(a[size_t(r * cols + c)]) - b[size_t(r * cols + c)]) * x[size_t(t * cols + c)];
      sum += d * d;
    }
  return std::sqrt(sum);
}

inline double output_error(const mcw::Tensor& w, const mcw::CompressedTensor& c,
                           const std::vector<float>& x, int64_t cols) {
  return output_error(w, c.dequantize(), x, cols);
}

}  // namespace prune_test
