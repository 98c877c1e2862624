#include <gtest/gtest.h>

#include <cmath>

#include "engine/compress/magnitude.h"
#include "engine/compress/nm_pattern.h"
#include "engine/core/error.h"
#include "prune_test_util.h"

using namespace mcw;

namespace {

// Kept weights keep their value, pruned ones are zero, and the mask matches both.
void expect_consistent(const Tensor& w, const CompressedTensor& c) {
  const auto a = w.to_f32(), b = c.dequantize().to_f32();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(b[i], c.kept(int64_t(i)) ? a[i] : 0.0f);
}

}  // namespace

TEST(Magnitude, PerLayerExactCountAndThreshold) {
  const Tensor w = prune_test::weight(33, 40, 1);
  for (double s : {0.0, 0.1, 0.5, 0.77, 1.0}) {
    const auto c = magnitude_prune(w, {{s, 0, 0}, PruneScope::PerLayer});
    const int64_t n = 33 * 40;
    EXPECT_EQ(c.kept_count(), n - std::llround(s * double(n))) << s;
    expect_consistent(w, c);
    const auto v = w.to_f32();
    float max_pruned = 0, min_kept = INFINITY;
    for (int64_t i = 0; i < n; ++i) {
      const float a = std::fabs(v[size_t(i)]);
      if (c.kept(i))
        min_kept = std::min(min_kept, a);
      else
        max_pruned = std::max(max_pruned, a);
    }
    if (s > 0 && s < 1) {
      EXPECT_LE(max_pruned, min_kept);
    }
  }
}

TEST(Magnitude, PerRowExactCountPerRow) {
  const int64_t rows = 9, cols = 50;
  const Tensor w = prune_test::weight(rows, cols, 2);
  const auto c = magnitude_prune(w, {{0.3, 0, 0}, PruneScope::PerRow});
  const auto v = w.to_f32();
  for (int64_t r = 0; r < rows; ++r) {
    int kept = 0;
    float max_pruned = 0, min_kept = INFINITY;
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t i = r * cols + j;
      const float a = std::fabs(v[size_t(i)]);
      if (c.kept(i))
        ++kept, min_kept = std::min(min_kept, a);
      else
        max_pruned = std::max(max_pruned, a);
    }
    EXPECT_EQ(kept, cols - 15) << r;  // round(0.3 * 50) pruned
    EXPECT_LE(max_pruned, min_kept);
  }
  expect_consistent(w, c);
  EXPECT_EQ(c.describe(), "f16, 30% sparse");
}

TEST(Magnitude, NmKeepsLargestInEveryGroup) {
  const int64_t rows = 6, cols = 32;
  const Tensor w = prune_test::weight(rows, cols, 3);
  const auto v = w.to_f32();
  for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}, std::pair{1, 4}}) {
    const auto c = magnitude_prune(w, {{0.5, n, m}, PruneScope::PerLayer});
    EXPECT_TRUE(mask_satisfies_nm(c.mask, rows, cols, n, m));
    EXPECT_EQ(c.nm_n, n);
    EXPECT_EQ(c.nm_m, m);
    EXPECT_EQ(c.kept_count(), rows * cols * n / m);
    for (int64_t g = 0; g < rows * cols; g += m) {
      float max_pruned = 0, min_kept = INFINITY;
      for (int64_t i = g; i < g + m; ++i)
        if (c.kept(i))
          min_kept = std::min(min_kept, std::fabs(v[size_t(i)]));
        else
          max_pruned = std::max(max_pruned, std::fabs(v[size_t(i)]));
      EXPECT_LE(max_pruned, min_kept);
    }
    expect_consistent(w, c);
  }
}

TEST(Magnitude, BadParametersThrowBeforeWork) {
  const Tensor w = prune_test::weight(4, 12, 4);
  EXPECT_THROW(magnitude_prune(w, {{1.5, 0, 0}}), Error);
  EXPECT_THROW(magnitude_prune(w, {{0.5, 4, 4}}), Error);
  EXPECT_THROW(magnitude_prune(w, {{0.5, 2, 8}}), Error);  // 8 does not divide 12
  const std::vector<float> vec = {1, 2, 3};
  EXPECT_THROW(magnitude_prune(Tensor::from_f32(vec, {3}, "v"), {}), Error);
  std::vector<float> bad = w.to_f32();
  bad[7] = NAN;
  try {
    magnitude_prune(Tensor::from_f32(bad, {4, 12}, "x.w"), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "x.w: weight [0, 7] is not finite");
  }
  CancelToken cancel;
  cancel.cancel();
  EXPECT_THROW(magnitude_prune(w, {{0.5, 0, 0}, PruneScope::PerRow}, &cancel), Cancelled);
}
