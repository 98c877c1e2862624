#include "engine/runs/pareto.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

namespace mcw {

namespace {

template <size_t K>
bool has_nan(const std::array<double, K>& p) {
  for (double v : p)
    if (std::isnan(v)) return true;
  return false;
}

// Indices of the points without NaN, sorted lexicographically by their coordinates. Every
// point that dominates p is lexicographically smaller than p, so it comes earlier.
template <size_t K>
std::vector<size_t> sorted_valid(std::span<const std::array<double, K>> pts) {
  std::vector<size_t> idx;
  idx.reserve(pts.size());
  for (size_t i = 0; i < pts.size(); ++i)
    if (!has_nan(pts[i])) idx.push_back(i);
  std::sort(idx.begin(), idx.end(),
            [&](size_t a, size_t b) { return pts[a] != pts[b] ? pts[a] < pts[b] : a < b; });
  return idx;
}

}  // namespace

bool pareto_dominates(std::span<const double> a, std::span<const double> b) {
  bool strictly = false;
  for (size_t k = 0; k < a.size(); ++k) {
    if (std::isnan(a[k]) || std::isnan(b[k]) || a[k] > b[k]) return false;
    strictly |= a[k] < b[k];
  }
  return strictly;
}

std::vector<size_t> pareto_front_2d(std::span<const std::array<double, 2>> pts) {
  const std::vector<size_t> idx = sorted_valid(pts);
  std::vector<size_t> front;
  bool seen = false;  // a point with a smaller x exists
  double best_y = 0;  // then: the smallest y among them
  for (size_t g = 0; g < idx.size();) {
    // A group of equal x, sorted by y: only its smallest y (and copies of it) can survive,
    // and only when no point with a smaller x has a y as small.
    const double x = pts[idx[g]][0], y0 = pts[idx[g]][1];
    size_t end = g;
    while (end < idx.size() && pts[idx[end]][0] == x) ++end;
    if (!seen || best_y > y0)
      for (size_t i = g; i < end && pts[idx[i]][1] == y0; ++i) front.push_back(idx[i]);
    best_y = seen ? std::min(best_y, y0) : y0;
    seen = true;
    g = end;
  }
  std::sort(front.begin(), front.end());
  return front;
}

std::vector<size_t> pareto_front_3d(std::span<const std::array<double, 3>> pts) {
  const std::vector<size_t> idx = sorted_valid(pts);
  // The (y, z) minima of the points seen so far: keys ascending, z strictly descending.
  // Some seen point has y' <= y and z' <= z exactly when the last step at or before y
  // has z' <= z.
  std::map<double, double> stairs;
  auto covered = [&](double y, double z) {
    auto it = stairs.upper_bound(y);
    return it != stairs.begin() && std::prev(it)->second <= z;
  };
  std::vector<size_t> front;
  for (size_t g = 0; g < idx.size();) {
    // Exact copies are decided together: they do not dominate each other.
    const std::array<double, 3>& p = pts[idx[g]];
    size_t end = g;
    while (end < idx.size() && pts[idx[end]] == p) ++end;
    if (covered(p[1], p[2])) {
      g = end;
      continue;  // dominated; its (y, z) would add no step either
    }
    for (size_t i = g; i < end; ++i) front.push_back(idx[i]);
    auto [it, inserted] = stairs.insert_or_assign(p[1], p[2]);
    auto next = std::next(it);
    while (next != stairs.end() && next->second >= p[2]) next = stairs.erase(next);
    g = end;
  }
  std::sort(front.begin(), front.end());
  return front;
}

std::vector<size_t> pareto_front(const std::vector<std::vector<double>>& points) {
  if (points.empty()) return {};
  const size_t k = points[0].size();
  for (const auto& p : points)
    if (p.size() != k) throw std::invalid_argument("pareto_front: points of different lengths");
  if (k == 2 || k == 3) {
    std::vector<std::array<double, 3>> p3(k == 3 ? points.size() : 0);
    std::vector<std::array<double, 2>> p2(k == 2 ? points.size() : 0);
    for (size_t i = 0; i < points.size(); ++i)
      k == 2 ? void(p2[i] = {points[i][0], points[i][1]})
             : void(p3[i] = {points[i][0], points[i][1], points[i][2]});
    return k == 2 ? pareto_front_2d(p2) : pareto_front_3d(p3);
  }
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    bool nan = false;
    for (double v : points[i]) nan |= std::isnan(v);
    if (nan) continue;
    bool dominated = false;
    for (size_t j = 0; j < points.size() && !dominated; ++j)
      dominated = pareto_dominates(points[j], points[i]);
    if (!dominated) front.push_back(i);
  }
  return front;
}

}  // namespace mcw
