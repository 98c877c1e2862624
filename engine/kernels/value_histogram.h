// Histogram of a float array's finite values over [lo, hi] in equal bins (the tensor
// inspector's distribution plot). Bin b covers [lo + b*w, lo + (b+1)*w), the last bin also
// takes hi; values outside [lo, hi] and non-finite values are not counted.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mcw {

struct ValueHistogram {
  double lo = 0, hi = 0;
  std::vector<uint64_t> counts;
};

// lo/hi default to the finite minimum and maximum (found first); `bins` must be positive.
ValueHistogram value_histogram(const float* x, size_t n, int bins);
ValueHistogram value_histogram(const float* x, size_t n, int bins, double lo, double hi);

}  // namespace mcw
