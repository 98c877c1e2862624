#include "engine/compress/smoothquant.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "engine/compress/affine_quantizer.h"
#include "engine/core/error.h"
#include "engine/core/half.h"

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
  CompressedTensor out;
  out.name = std::move(name);
  out.rows = rows, out.cols = cols;
  out.coding = WeightCoding::Affine;
  out.bits = 8, out.group_size = cols, out.symmetric = true;
  out.scales.resize(size_t(rows));
  std::vector<uint8_t> codes(size_t(rows * cols));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows), [&](const tbb::blocked_range<int64_t>& rr) {
    if (cancel) cancel->throw_if_cancelled();
    for (int64_t r = rr.begin(); r < rr.end(); ++r) {
      const float* wr = w + r * cols;
      float amax = 0;
      for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(wr[c]));
      // The reference clamps the maximum to 1e-5 before dividing (an all-zero row).
      const AffineParams p{f16_to_f32(f32_to_f16(std::max(amax, 1e-5f) / 127.0f)), 128.0f};
      out.scales[size_t(r)] = p.scale;
      for (int64_t c = 0; c < cols; ++c) {
        // amax / scale <= 127 · (1 + 2⁻¹¹) after the f16 rounding: still rounds to 127.
        const float q = std::clamp(std::nearbyint(wr[c] / p.scale), -127.0f, 127.0f);
        codes[size_t(r * cols + c)] = uint8_t(int(q) + 128);
      }
    }
  });
  out.codes = pack_codes(codes.data(), codes.size(), 8);
  return out;
}

}  // namespace mcw
