#include "engine/compress/smoothquant.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "engine/compress/rtn.h"
#include "engine/core/error.h"

namespace mcw {

std::vector<float> column_max_abs(const float* w, int64_t rows, int64_t cols) {
  std::vector<float> m(size_t(cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      m[size_t(c)] = std::max(m[size_t(c)], std::fabs(w[r * cols + c]));
  return m;
}

std::vector<float> smoothquant_scales(const std::vector<float>& act_max,
                                      const std::vector<float>& weight_max, float alpha) {
  if (act_max.size() != weight_max.size())
    throw Error("smoothquant", "activation maxima (" + std::to_string(act_max.size()) +
                                   ") and weight maxima (" + std::to_string(weight_max.size()) +
                                   ") differ in length");
  if (!(alpha >= 0.0f && alpha <= 1.0f)) throw Error("smoothquant", "alpha must be in [0, 1]");
  std::vector<float> s(act_max.size(), 1.0f);
  for (size_t j = 0; j < s.size(); ++j) {
    const double a = act_max[j], w = weight_max[j];
    if (!(a > 0) || !(w > 0)) continue;
    const double v = std::pow(a, double(alpha)) / std::pow(w, 1.0 - double(alpha));
    if (std::isfinite(v)) s[j] = float(std::max(v, 1e-5));
  }
  return s;
}

void smooth_weight(float* w, int64_t rows, int64_t cols, const std::vector<float>& s) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) w[r * cols + c] *= s[size_t(c)];
}

void smooth_activations(float* x, int64_t n, int64_t cols, const std::vector<float>& s) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] /= s[size_t(c)];
}

Int8Rows quantize_rows_int8(const float* x, int64_t n, int64_t cols) {
  Int8Rows out;
  out.q.resize(size_t(n * cols));
  out.scale.resize(size_t(n));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n), [&](const tbb::blocked_range<int64_t>& rr) {
    for (int64_t r = rr.begin(); r < rr.end(); ++r) {
      const float* xr = x + r * cols;
      const float s = int8_row_scale(xr, cols);
      out.scale[size_t(r)] = s;
      for (int64_t c = 0; c < cols; ++c)
        out.q[size_t(r * cols + c)] =
            int8_t(std::clamp(std::nearbyint(xr[c] / s), -127.0f, 127.0f));
    }
  });
  return out;
}

CompressedTensor quantize_weight_w8(const float* w, int64_t rows, int64_t cols,
                                    const CancelToken* cancel, std::string name) {
  RtnOptions o;
  o.bits = 8, o.symmetric = true, o.scope = QuantScope::PerChannel;
  return quantize_rtn(w, rows, cols, o, nullptr, cancel, std::move(name));
}

}  // namespace mcw
