#include "engine/search/spearman.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mcw {

std::vector<double> average_ranks(std::span<const double> v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double mean = double(i + j) / 2 + 1;  // positions i..j hold ranks i+1..j+1
    for (size_t k = i; k <= j; ++k) rank[order[k]] = mean;
    i = j + 1;
  }
  return rank;
}

double spearman_correlation(std::span<const double> a, std::span<const double> b) {
  if (a.size() != b.size() || a.size() < 2) return std::nan("");
  const std::vector<double> ra = average_ranks(a), rb = average_ranks(b);
  const double mean = double(a.size() + 1) / 2;  // of ranks 1..n, ties or not
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    const double x = ra[i] - mean, y = rb[i] - mean;
    sab += x * y, saa += x * x, sbb += y * y;
  }
  if (saa == 0 || sbb == 0) return std::nan("");
  return sab / std::sqrt(saa * sbb);
}

}  // namespace mcw
