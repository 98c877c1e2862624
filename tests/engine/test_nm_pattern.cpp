#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "engine/compress/nm_pattern.h"
#include "engine/compress/sparsity.h"
#include "engine/core/error.h"
#include "prune_test_util.h"

using namespace mcw;

TEST(NmPattern, GroupKeepsTheNLargest) {
  std::mt19937 rng(3);
  for (int m : {4, 8, 16}) {
    for (int n = 1; n < m; ++n) {
      std::vector<double> s(static_cast<size_t>(m));
      for (auto& v : s) v = double(rng() % 1000);
      std::vector<uint8_t> keep(static_cast<size_t>(m));
      select_nm_group(s.data(), n, m, keep.data());
      EXPECT_EQ(std::count(keep.begin(), keep.end(), 1), n);
      // Naive: rank by (score, index); the m - n lowest are pruned.
      std::vector<int> idx(static_cast<size_t>(m));
      std::iota(idx.begin(), idx.end(), 0);
      std::sort(idx.begin(), idx.end(), [&](int a, int b) {
        return s[size_t(a)] < s[size_t(b)] || (s[size_t(a)] == s[size_t(b)] && a < b);
      });
      for (int i = 0; i < m; ++i) EXPECT_EQ(keep[size_t(idx[size_t(i)])], i >= m - n ? 1 : 0);
    }
  }
}

TEST(NmPattern, TiesPruneLowerIndexFirst) {
  const float s[4] = {1, 1, 1, 1};
  uint8_t keep[4];
  select_nm_group(s, 2, 4, keep);
  EXPECT_EQ(std::vector<uint8_t>(keep, keep + 4), (std::vector<uint8_t>{0, 0, 1, 1}));
}

TEST(NmPattern, WholeMatrixAndChecker) {
  const int64_t rows = 7, cols = 24;
  const auto s = prune_test::gaussian(size_t(rows * cols), 5);
  for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}, std::pair{1, 3}, std::pair{5, 6}}) {
    std::vector<uint8_t> keep(s.size());
    select_nm(s.data(), rows, cols, n, m, keep.data(), nullptr);
    const auto mask = pack_mask(keep.data(), keep.size());
    EXPECT_TRUE(mask_satisfies_nm(mask, rows, cols, n, m)) << n << ":" << m;
    EXPECT_FALSE(mask_satisfies_nm(mask, rows, cols, n == 1 ? 2 : n - 1, m));
    auto broken = mask;
    broken[3] ^= 0x10;  // one weight of row 0 flipped
    EXPECT_FALSE(mask_satisfies_nm(broken, rows, cols, n, m));
  }
}

TEST(NmPattern, ValidationMessages) {
  const auto msg = [](SparsityTarget t, int64_t cols) {
    try {
      validate_target(t, cols, "layer.w");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg({0.5, 4, 4}, 16), "layer.w: N:M pattern 4:4 needs 0 < N < M");
  EXPECT_EQ(msg({0.5, 5, 4}, 16), "layer.w: N:M pattern 5:4 needs 0 < N < M");
  EXPECT_EQ(msg({0.5, 0, 4}, 16), "layer.w: N:M pattern 0:4 needs 0 < N < M");
  EXPECT_EQ(msg({0.5, 2, 4}, 18),
            "layer.w: N:M pattern 2:4 needs M to divide the 18 input columns");
  EXPECT_EQ(msg({1.5, 0, 0}, 16), "layer.w: sparsity 1.500000 is outside [0, 1]");
  EXPECT_EQ(msg({-0.1, 0, 0}, 16), "layer.w: sparsity -0.100000 is outside [0, 1]");
  EXPECT_EQ(msg({std::nan(""), 0, 0}, 16).substr(0, 17), "layer.w: sparsity");
  EXPECT_EQ(msg({0.5, 2, 4}, 16), "no error");
  EXPECT_EQ(msg({1.0, 0, 0}, 16), "no error");
}
