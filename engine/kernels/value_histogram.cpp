#include "engine/kernels/value_histogram.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "engine/core/error.h"

namespace mcw {

static constexpr size_t kGrain = size_t(1) << 16;

ValueHistogram value_histogram(const float* x, size_t n, int bins) {
  using Range = std::pair<float, float>;
  const float inf = std::numeric_limits<float>::infinity();
  const Range r = tbb::parallel_reduce(
      tbb::blocked_range<size_t>(0, n, kGrain), Range{inf, -inf},
      [&](const tbb::blocked_range<size_t>& b, Range acc) {
        for (size_t i = b.begin(); i < b.end(); ++i)
          if (std::isfinite(x[i]))
            acc.first = std::min(acc.first, x[i]), acc.second = std::max(acc.second, x[i]);
        return acc;
      },
      [](Range a, Range b) {
        return Range{std::min(a.first, b.first), std::max(a.second, b.second)};
      });
  if (r.first > r.second) return value_histogram(x, n, bins, 0.0, 0.0);
  return value_histogram(x, n, bins, r.first, r.second);
}

ValueHistogram value_histogram(const float* x, size_t n, int bins, double lo, double hi) {
  if (bins <= 0 || !(lo <= hi))
    throw Error("histogram", std::to_string(bins) + " bins over [" + std::to_string(lo) + ", " +
                                 std::to_string(hi) + "]");
  ValueHistogram h;
  h.lo = lo, h.hi = hi;
  using Counts = std::vector<uint64_t>;
  const double scale = hi > lo ? double(bins) / (hi - lo) : 0.0;
  h.counts = tbb::parallel_reduce(
      tbb::blocked_range<size_t>(0, n, kGrain), Counts(size_t(bins), 0),
      [&](const tbb::blocked_range<size_t>& b, Counts acc) {
        for (size_t i = b.begin(); i < b.end(); ++i) {
          const double v = x[i];
          if (!(v >= lo && v <= hi)) continue;  // also drops NaN
          acc[scale > 0 ? std::min(size_t((v - lo) * scale), size_t(bins) - 1)
                        : size_t(bins) - 1]++;
        }
        return acc;
      },
      [](Counts a, const Counts& b) {
        for (size_t k = 0; k < a.size(); ++k) a[k] += b[k];
        return a;
      });
  return h;
}

}  // namespace mcw
