// Pareto fronts: the points no other point beats on every objective, all objectives
// minimised (perplexity or KL, latency, size). Point a dominates b when a <= b in every
// objective and a < b in at least one. So exact duplicates never dominate each other: all
// copies of a non-dominated point are in the front (a plot draws them on one spot, and a
// table lists every run). A point with a NaN objective is never in the front and
// dominates nothing (a run whose metric is unknown cannot be compared).
#pragma once
#include <array>
#include <cstddef>
#include <span>
#include <vector>

namespace mcw {

// Indices into `points` of the front, ascending. O(n log n).
std::vector<size_t> pareto_front_2d(std::span<const std::array<double, 2>> points);
// O(n log n): a sweep in the first objective over a staircase of the other two.
std::vector<size_t> pareto_front_3d(std::span<const std::array<double, 3>> points);
// Any number of objectives (every point the same length); O(n^2), for 4 or more
// objectives or as a reference. Dispatches to the fast versions for 2 and 3.
std::vector<size_t> pareto_front(const std::vector<std::vector<double>>& points);

bool pareto_dominates(std::span<const double> a, std::span<const double> b);

}  // namespace mcw
