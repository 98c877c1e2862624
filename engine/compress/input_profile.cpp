#include "engine/compress/input_profile.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mcw {

namespace {

std::vector<double> sorted(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v;
}

double ratio(double a, double b) {
  return b > 0 ? a / b : std::numeric_limits<double>::infinity();
}

// The q-quantile of sorted values (nearest rank).
double quantile(const std::vector<double>& s, double q) {
  return s.empty() ? 0.0 : s[size_t(std::llround(q * double(s.size() - 1)))];
}

}  // namespace

double InputProfile::max_over_median() const {
  const auto s = sorted(norm);
  return s.empty() ? 0.0 : ratio(s.back(), quantile(s, 0.5));
}

double InputProfile::p99_over_median() const {
  const auto s = sorted(norm);
  return ratio(quantile(s, 0.99), quantile(s, 0.5));
}

double InputProfile::max_over_min() const {
  const auto s = sorted(norm);
  return s.empty() ? 0.0 : ratio(s.back(), s.front());
}

int64_t InputProfile::channels_reaching(float threshold) const {
  return std::count_if(max_abs.begin(), max_abs.end(), [&](float m) { return m >= threshold; });
}

std::vector<InputProfile> profile_linear_inputs(const LlamaModel& model,
                                                const std::vector<std::vector<int32_t>>& windows,
                                                const ProgressFn& progress,
                                                const CancelToken* cancel) {
  LlamaModel copy = model;  // sequential_calibrate runs on a mutable model
  std::vector<InputProfile> out;
  std::vector<std::vector<double>> sq;  // Σx² per channel, summed in f64
  for (const LinearGroup& g : linear_groups(copy)) {
    InputProfile p;
    p.group = g;
    p.max_abs.assign(size_t(g.in_features), 0.0f);
    out.push_back(std::move(p));
    sq.emplace_back(size_t(g.in_features), 0.0);
  }
  auto find = [&](const LinearGroup& g) -> size_t {
    for (size_t i = 0; i < out.size(); ++i)
      if (out[i].group.names == g.names) return i;
    return out.size();
  };
  CalibrationHooks hooks;
  hooks.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
    const size_t i = find(g);
    if (i == out.size()) return;
    InputProfile& p = out[i];
    const int64_t cols = g.in_features;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const float v = x[r * cols + c];
        sq[i][size_t(c)] += double(v) * double(v);
        p.max_abs[size_t(c)] = std::max(p.max_abs[size_t(c)], std::fabs(v));
      }
    p.tokens += rows;
  };
  hooks.compress = [](const LinearGroup&) {};
  sequential_calibrate(copy, windows, hooks, progress, cancel);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].norm.resize(sq[i].size());
    for (size_t c = 0; c < sq[i].size(); ++c) out[i].norm[c] = std::sqrt(sq[i][c]);
  }
  return out;
}

}  // namespace mcw
