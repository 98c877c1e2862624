// Shared helpers for the quantisation tests: random layers, calibration inputs with
// correlated and outlier channels, statistics and output errors computed with plain loops
// in f64 (independent of the engine's kernels).
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/compress/layer_stats.h"

namespace quant_test {

inline std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Heavy-tailed weights (Laplace-like), where a uniform grid wastes levels.
inline std::vector<float> laplace(size_t n, uint32_t seed, float b = 1.0f) {
  std::mt19937 rng(seed);
  std::exponential_distribution<float> e(1.0f / b);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(n);
  for (float& x : v) x = sign(rng) ? e(rng) : -e(rng);
  return v;
}

// X [n, cols] = Z·M with a random mixing M (correlated channels), channel magnitudes
// spread over two decades, and `outliers` channels scaled up by `outlier_gain`.
inline std::vector<float> correlated_inputs(int64_t n, int64_t cols, uint32_t seed,
                                            int outliers = 0, float outlier_gain = 20.0f) {
  const std::vector<float> z = gaussian(size_t(n * cols), seed);
  const std::vector<float> m = gaussian(size_t(cols * cols), seed + 1000, 0.3f);
  std::mt19937 rng(seed + 2000);
  std::uniform_real_distribution<float> mag(-1.0f, 1.0f);
  std::vector<float> gain(static_cast<size_t>(cols));
  for (auto& g : gain) g = std::pow(10.0f, mag(rng));
  for (int o = 0; o < outliers; ++o) gain[size_t((o * 7 + 3) % cols)] *= outlier_gain;
  std::vector<float> x(size_t(n * cols));
  for (int64_t s = 0; s < n; ++s)
    for (int64_t j = 0; j < cols; ++j) {
      double acc = z[size_t(s * cols + j)];
      for (int64_t p = 0; p < cols; ++p)
        acc += double(z[size_t(s * cols + p)]) * m[size_t(p * cols + j)];
      x[size_t(s * cols + j)] = float(acc) * gain[size_t(j)];
    }
  return x;
}

inline mcw::LayerStats stats_of(const std::vector<float>& x, int64_t n, int64_t cols) {
  mcw::LayerStats s{cols, std::vector<double>(size_t(cols * cols)),
                    std::vector<double>(size_t(cols)), std::vector<float>(size_t(cols)), n};
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < cols; ++i) {
      const double xi = x[size_t(r * cols + i)];
      s.sq_norm[size_t(i)] += xi * xi;
      s.max_abs[size_t(i)] = std::max(s.max_abs[size_t(i)], float(std::fabs(xi)));
      for (int64_t j = 0; j < cols; ++j)
        s.xtx[size_t(i * cols + j)] += xi * x[size_t(r * cols + j)];
    }
  return s;
}

// ‖(W − Ŵ)·Xᵀ‖²_F = Σ_r Δ_r·H·Δ_rᵀ with H = XᵀX.
inline double output_error(const float* w, const float* wq, int64_t rows, int64_t cols,
                           const std::vector<double>& h) {
  double e = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < cols; ++i) {
      const double di = double(w[r * cols + i]) - wq[r * cols + i];
      for (int64_t j = 0; j < cols; ++j)
        e += di * h[size_t(i * cols + j)] * (double(w[r * cols + j]) - wq[r * cols + j]);
    }
  return e;
}

// ‖Y_ref − X·Ŵᵀ‖²_F with explicit activations.
inline double activation_error(const std::vector<float>& x, int64_t n, int64_t cols, const float* w,
                               const float* wq, int64_t rows) {
  double e = 0;
  for (int64_t s = 0; s < n; ++s)
    for (int64_t r = 0; r < rows; ++r) {
      double a = 0, b = 0;
      for (int64_t j = 0; j < cols; ++j) {
        a += double(x[size_t(s * cols + j)]) * w[r * cols + j];
        b += double(x[size_t(s * cols + j)]) * wq[r * cols + j];
      }
      e += (a - b) * (a - b);
    }
  return e;
}

inline double weighted_sq_error(const float* w, const float* wq, int64_t rows, int64_t cols,
                                const double* col_weight) {
  double e = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double d = double(w[r * cols + c]) - wq[r * cols + c];
      e += (col_weight ? col_weight[c] : 1.0) * d * d;
    }
  return e;
}

inline std::vector<uint8_t> codes_of(const mcw::CompressedTensor& t) {
  std::vector<uint8_t> q(size_t(t.rows * t.cols));
  mcw::unpack_codes(t.codes.data(), q.size(), t.bits, q.data());
  return q;
}

// Random affine tensor: codes, scales and (integer or not) zeros drawn independently.
inline mcw::CompressedTensor random_affine(int64_t rows, int64_t cols, int bits, int64_t group, bool sym,
                               std::mt19937& rng) {
  mcw::CompressedTensor t;
  t.name = "w";
  t.rows = rows, t.cols = cols, t.coding = mcw::WeightCoding::Affine;
  t.bits = bits, t.group_size = group, t.symmetric = sym;
  std::vector<uint8_t> q(size_t(rows * cols));
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
  for (uint8_t& c : q) c = uint8_t(code(rng));
  t.codes = mcw::pack_codes(q.data(), q.size(), bits);
  const int64_t g = t.groups();
  std::uniform_real_distribution<float> s(0.01f, 0.1f), z(0.0f, float((1 << bits) - 1));
  for (int64_t k = 0; k < rows * g; ++k) {
    t.scales.push_back(s(rng));
    if (!sym) t.zeros.push_back(k % 2 ? std::round(z(rng)) : z(rng));
  }
  return t;
}

}  // namespace quant_test
