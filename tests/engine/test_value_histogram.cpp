// The parallel histogram against counts worked out by hand and against a naive loop.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/core/error.h"
#include "engine/kernels/value_histogram.h"

using namespace mcw;

TEST(ValueHistogram, HandWorkedBins) {
  // [0, 4] in 4 bins: 0,0.5 | 1,1.9 | 2 | 3.5,4 (the maximum goes to the last bin).
  const float x[] = {0, 0.5f, 1, 1.9f, 2, 3.5f, 4, NAN, INFINITY};
  const ValueHistogram h = value_histogram(x, 9, 4);
  EXPECT_EQ(h.lo, 0.0);
  EXPECT_EQ(h.hi, 4.0);
  EXPECT_EQ(h.counts, (std::vector<uint64_t>{2, 2, 1, 2}));
  const ValueHistogram clipped = value_histogram(x, 9, 2, 1.0, 2.0);
  EXPECT_EQ(clipped.counts, (std::vector<uint64_t>{1, 2}));  // 1 | 1.9, 2
}

TEST(ValueHistogram, MatchesNaiveOnLargeInput) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> x(300001);
  for (float& v : x) v = normal(rng);
  const ValueHistogram h = value_histogram(x.data(), x.size(), 37);
  std::vector<uint64_t> ref(37, 0);
  const double per_unit = 37 / (h.hi - h.lo);
  for (float v : x) ref[std::min<size_t>(size_t((v - h.lo) * per_unit), 36)]++;
  EXPECT_EQ(h.counts, ref);
  EXPECT_EQ(h.lo, *std::min_element(x.begin(), x.end()));
  EXPECT_EQ(h.hi, *std::max_element(x.begin(), x.end()));
}

TEST(ValueHistogram, ConstantAndEmptyInputs) {
  const float same[] = {2, 2, 2};
  EXPECT_EQ(value_histogram(same, 3, 5).counts, (std::vector<uint64_t>{0, 0, 0, 0, 3}));
  EXPECT_EQ(value_histogram(same, 0, 3).counts, (std::vector<uint64_t>{0, 0, 0}));
  EXPECT_THROW(value_histogram(same, 3, 0), Error);
}
