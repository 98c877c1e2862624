// Spearman's rank correlation: how well one measure orders items as another does (a cheap
// sensitivity proxy against the exact KL). Pearson's correlation of the ranks, tied values
// sharing the mean of the ranks they span.
#pragma once
#include <span>
#include <vector>

namespace mcw {

// Ranks 1..n of the values, ties averaged: {10, 30, 20, 20} -> {1, 4, 2.5, 2.5}.
std::vector<double> average_ranks(std::span<const double> values);

// In [-1, 1]; NaN when the spans differ in length, hold fewer than 2 values, or either is
// constant (no order to compare).
double spearman_correlation(std::span<const double> a, std::span<const double> b);

}  // namespace mcw
