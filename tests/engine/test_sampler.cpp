#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/model/sampler.h"

using namespace mcw;

TEST(Sampler, GreedyPicksTheArgmax) {
  Sampler s({0, 1, 1});
  const std::vector<float> l = {0.1f, 3.0f, -2.0f, 2.9f};
  EXPECT_EQ(s.next(l), 1);
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  const std::vector<float> l = {0.0f, 1.0f, 2.0f};
  const double z = 1 + std::exp(1.0) + std::exp(2.0);
  Sampler s({1.0, 1.0, 123});
  std::vector<int> count(3, 0);
  const int n = 200000;
  for (int i = 0; i < n; ++i) count[size_t(s.next(l))]++;
  for (int i = 0; i < 3; ++i) {
    const double p = std::exp(double(i)) / z, sd = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(double(count[size_t(i)]) / n, p, 5 * sd) << i;
  }
}

TEST(Sampler, TopPKeepsOnlyTheNucleus) {
  // Probabilities ~ 0.665, 0.245, 0.090: top_p 0.8 keeps the first two only.
  const std::vector<float> l = {2.0f, 1.0f, 0.0f};
  Sampler s({1.0, 0.8, 5});
  for (int i = 0; i < 20000; ++i) ASSERT_NE(s.next(l), 2);
  Sampler tiny({1.0, 1e-9, 5});
  for (int i = 0; i < 100; ++i) ASSERT_EQ(tiny.next(l), 0);
}

TEST(Sampler, SameSeedSameSequence) {
  const std::vector<float> l = {0.3f, 0.2f, 0.1f, 0.4f};
  Sampler a({0.8, 0.95, 9}), b({0.8, 0.95, 9});
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.next(l), b.next(l));
}
