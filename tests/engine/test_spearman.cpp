// Spearman's rank correlation against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/search/spearman.h"

using namespace mcw;

TEST(Spearman, AverageRanksShareTies) {
  const std::vector<double> v = {10, 30, 20, 20};
  EXPECT_EQ(average_ranks(v), (std::vector<double>{1, 4, 2.5, 2.5}));
  const std::vector<double> same = {7, 7, 7};
  EXPECT_EQ(average_ranks(same), (std::vector<double>{2, 2, 2}));
}

TEST(Spearman, MatchesHandComputedExamples) {
  // No ties: 1 − 6·Σd² / (n(n² − 1)) with d = {1, 1, 1, 1, 0}: 1 − 24/120 = 0.8.
  const std::vector<double> a = {1, 2, 3, 4, 5}, b = {2, 1, 4, 3, 5};
  EXPECT_NEAR(spearman_correlation(a, b), 0.8, 1e-15);
  // A monotone transform changes nothing; reversing the order gives −1.
  const std::vector<double> c = {0.1, 4, 9.5, 1e3, 1e9}, d = {5, 4, 3, 2, 1};
  EXPECT_NEAR(spearman_correlation(a, c), 1.0, 1e-15);
  EXPECT_NEAR(spearman_correlation(a, d), -1.0, 1e-15);
  // Ties: ranks of {5, 6, 7, 8, 7} are {1, 2, 3.5, 5, 3.5}; deviations from the mean 3 are
  // {−2, −1, 0.5, 2, 0.5} against {−2, −1, 0, 1, 2}: Σxy = 8, Σx² = 10, Σy² = 9.5.
  const std::vector<double> e = {5, 6, 7, 8, 7};
  EXPECT_NEAR(spearman_correlation(a, e), 8 / std::sqrt(95.0), 1e-15);
}

TEST(Spearman, UndefinedCasesAreNaN) {
  const std::vector<double> a = {1, 2, 3}, flat = {4, 4, 4}, one = {1}, two = {1, 2};
  EXPECT_TRUE(std::isnan(spearman_correlation(a, flat)));
  EXPECT_TRUE(std::isnan(spearman_correlation(one, one)));
  EXPECT_TRUE(std::isnan(spearman_correlation(a, two)));
}
