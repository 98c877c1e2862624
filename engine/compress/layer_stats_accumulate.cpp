#include "engine/compress/layer_stats_accumulate.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/core/error.h"
#include "engine/kernels/gram.h"

namespace mcw {

LayerStats make_layer_stats(int64_t cols, bool gram) {
  if (cols <= 0 || cols > (int64_t(1) << 20))
    throw Error("layer stats", "unsupported number of input channels " + std::to_string(cols));
  const size_t c = size_t(cols);
  return LayerStats{cols, std::vector<double>(gram ? c * c : 0, 0.0), std::vector<double>(c, 0.0),
                    std::vector<float>(c, 0.0f), 0};
}

void check_layer_stats(const LayerStats& s, int64_t cols, const std::string& what, bool need_gram) {
  if (s.cols != cols)
    throw Error(what, "calibration statistics are for " + std::to_string(s.cols) +
                          " input channels, the weight has " + std::to_string(cols));
  const size_t c = size_t(cols);
  const bool gram_ok = s.xtx.size() == c * c || (!need_gram && s.xtx.empty());
  if (cols <= 0 || !gram_ok || s.sq_norm.size() != c || s.max_abs.size() != c)
    throw Error(what, "calibration statistics have inconsistent sizes");
  if (s.samples < 0) throw Error(what, "calibration statistics have a negative sample count");
  const auto finite = [](double v) { return std::isfinite(v); };
  if (!std::all_of(s.xtx.begin(), s.xtx.end(), finite) ||
      !std::all_of(s.sq_norm.begin(), s.sq_norm.end(), finite) ||
      !std::all_of(s.max_abs.begin(), s.max_abs.end(), [](float v) { return std::isfinite(v); }))
    throw Error(what, "calibration statistics contain NaN or infinity");
  for (size_t j = 0; j < c; ++j)
    if (s.sq_norm[j] < 0 || (!s.xtx.empty() && s.xtx[j * c + j] < 0))
      throw Error(what, "calibration statistics have a negative sum of squares at channel " +
                            std::to_string(j));
}

void accumulate(LayerStats& s, const float* X, int64_t n) {
  const int64_t cols = s.cols;
  const size_t c = size_t(cols);
  if (cols <= 0 || (s.xtx.size() != c * c && !s.xtx.empty()) || s.sq_norm.size() != c ||
      s.max_abs.size() != c)
    throw Error("layer stats", "statistics not initialised for " + std::to_string(cols) +
                                   " channels (use make_layer_stats)");
  if (n < 0) throw Error("layer stats", "negative number of activation rows");
  if (!s.xtx.empty()) accumulate_gram(X, cols, n, cols, s.xtx.data());
  // Per-channel sums over all rows, columns split over threads (each column's sum is
  // taken in row order, whatever the split).
  constexpr int64_t kCols = 256;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, cols, kCols),
                    [&](const tbb::blocked_range<int64_t>& range) {
    for (int64_t r = 0; r < n; ++r) {
      const float* x = X + r * cols;
      for (int64_t j = range.begin(); j < range.end(); ++j) {
        const float v = x[j];
        s.sq_norm[size_t(j)] += double(v) * double(v);
        s.max_abs[size_t(j)] = std::max(s.max_abs[size_t(j)], std::fabs(v));
      }
    }
  });
  s.samples += n;
}

}  // namespace mcw
