#include "engine/compress/structured.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/core/error.h"
#include "engine/kernels/stored_matmul.h"

namespace mcw {

void ChannelMoments::add(const float* x, int64_t rows) {
  if (rows <= 0) return;
  const int64_t cols = this->cols();
  std::vector<double> bm(size_t(cols), 0.0), bm2(size_t(cols), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) bm[size_t(j)] += x[r * cols + j];
  for (double& v : bm) v /= double(rows);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const double d = x[r * cols + j] - bm[size_t(j)];
      bm2[size_t(j)] += d * d;
    }
  const double na = double(n_), nb = double(rows), n = na + nb;
  for (size_t j = 0; j < size_t(cols); ++j) {
    const double delta = bm[j] - mean_[j];
    mean_[j] += delta * nb / n;
    m2_[j] += bm2[j] + delta * delta * na * nb / n;
  }
  n_ += rows;
}

double ChannelMoments::variance(int64_t j) const {
  return n_ > 1 ? m2_[size_t(j)] / double(n_ - 1) : 0.0;
}

double ChannelMoments::mean_square(int64_t j) const {
  const double m = mean_[size_t(j)];
  return n_ > 0 ? m2_[size_t(j)] / double(n_) + m * m : 0.0;
}

StructuredScore structured_score(const std::string& name) {
  if (name == "flap") return StructuredScore::Flap;
  if (name == "wanda") return StructuredScore::Wanda;
  throw Error("structured", "unknown importance score '" + name + "' (flap or wanda)");
}

// Σ_r f(W[r, j]) for every column of W [rows, cols], W in any stored dtype (read a few
// rows at a time, so that a mapped bf16 weight is never copied whole).
template <class F>
static std::vector<double> column_sums(const Tensor& w, F f) {
  const int64_t rows = w.dim(0), cols = w.dim(1), chunk = 64;
  std::vector<double> n(size_t(cols), 0.0);
  std::vector<float> buf(size_t(std::min(rows, chunk) * cols));
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t r1 = std::min(rows, r0 + chunk);
    weight_rows_f32(w, r0, r1, buf.data());
    for (int64_t r = 0; r < r1 - r0; ++r)
      for (int64_t j = 0; j < cols; ++j) n[size_t(j)] += f(double(buf[size_t(r * cols + j)]));
  }
  return n;
}

// ‖W[:, j]‖² for every column of W [rows, cols].
static std::vector<double> column_sq_norms(const Tensor& w) {
  return column_sums(w, [](double v) { return v * v; });
}

static void check_shapes(const Tensor& w, const ChannelMoments& m) {
  if (w.ndim() != 2 || w.dim(1) != m.cols())
    throw Error(w.name(), "statistics cover " + std::to_string(m.cols()) +
                              " input channels, the weight has shape " + shape_string(w.shape()));
}

std::vector<double> channel_importance(const Tensor& w, const ChannelMoments& m,
                                       StructuredScore s) {
  check_shapes(w, m);
  if (s == StructuredScore::Flap) {
    std::vector<double> score = column_sq_norms(w);
    for (int64_t j = 0; j < m.cols(); ++j) score[size_t(j)] *= m.variance(j);
    return score;
  }
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<double> score = column_sums(w, [](double v) { return std::fabs(v); });
  for (int64_t j = 0; j < cols; ++j) score[size_t(j)] *= std::sqrt(m.mean_square(j)) / double(rows);
  return score;
}

std::vector<double> unit_importance(const std::vector<double>& channel, int64_t width,
                                    bool squares) {
  if (width <= 0 || channel.size() % size_t(width))
    throw Error("structured", std::to_string(channel.size()) +
                                  " channels do not split into units of " + std::to_string(width));
  std::vector<double> u(channel.size() / size_t(width), 0.0);
  for (size_t j = 0; j < channel.size(); ++j)
    u[j / size_t(width)] += squares ? channel[j] * channel[j] : channel[j];
  return u;
}

std::vector<int64_t> least_important(const std::vector<double>& score, int64_t count) {
  std::vector<int64_t> idx(score.size());
  std::iota(idx.begin(), idx.end(), int64_t(0));
  count = std::clamp<int64_t>(count, 0, int64_t(score.size()));
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return score[size_t(a)] < score[size_t(b)]; });
  idx.resize(size_t(count));
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::vector<int64_t> unit_channels(const std::vector<int64_t>& units, int64_t width) {
  std::vector<int64_t> ch;
  for (int64_t u : units)
    for (int64_t i = 0; i < width; ++i) ch.push_back(u * width + i);
  std::sort(ch.begin(), ch.end());
  return ch;
}

void mask_input_channels(Tensor& w, Tensor* bias, const std::vector<int64_t>& channels,
                         const ChannelMoments& m) {
  check_shapes(w, m);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  if (bias && bias->empty()) *bias = Tensor::zeros(DType::F32, {rows}, bias->name());
  if (bias && bias->numel() != rows)
    throw Error(w.name(), "bias of " + std::to_string(bias->numel()) + " values for " +
                              std::to_string(rows) + " outputs");
  float* p = w.mutable_as<float>();
  float* b = bias ? bias->mutable_as<float>() : nullptr;
  for (int64_t j : channels) {
    if (j < 0 || j >= cols) throw Error(w.name(), "channel " + std::to_string(j) + " out of range");
    const double mean = m.mean(j);
    for (int64_t r = 0; r < rows; ++r) {
      float& v = p[r * cols + j];
      if (b) b[r] = float(double(b[r]) + double(v) * mean);
      v = 0.0f;
    }
  }
}

double removed_rows_share(const Tensor& w, const std::vector<int64_t>& units, int64_t width) {
  const int64_t cols = w.dim(1);
  const float* p = w.as<float>();
  double all = 0, gone = 0;
  for (int64_t i = 0; i < w.numel(); ++i) all += double(p[i]) * p[i];
  for (int64_t u : units)
    for (int64_t r = u * width; r < (u + 1) * width; ++r)
      for (int64_t j = 0; j < cols; ++j) gone += double(p[r * cols + j]) * p[r * cols + j];
  return all > 0 ? gone / all : 0.0;
}

double removal_relative_error(const Tensor& w, const std::vector<int64_t>& channels,
                              const ChannelMoments& m) {
  check_shapes(w, m);
  const std::vector<double> n = column_sq_norms(w);
  double num = 0, den = 0;
  for (int64_t j : channels) num += m.variance(j) * n[size_t(j)];
  for (int64_t j = 0; j < m.cols(); ++j) den += m.mean_square(j) * n[size_t(j)];
  return den > 0 ? num / den : 0.0;
}

}  // namespace mcw
