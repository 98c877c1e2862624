#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/compress/gptq.h"
#include "engine/compress/outliers.h"
#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "quant_test_util.h"

using namespace mcw;
using namespace quant_test;

namespace {
constexpr int64_t kRows = 32, kCols = 128;

CompressedTensor rtn3(const std::vector<float>& w) {
  RtnOptions o;
  o.bits = 3, o.group_size = 32;
  return quantize_rtn(w.data(), kRows, kCols, o);
}
}  // namespace

TEST(Outliers, ErrorFallsWithFractionAndBitsAreCounted) {
  const auto w = laplace(size_t(kRows * kCols), 4, 0.02f);
  std::vector<double> hd(kCols);
  for (int64_t c = 0; c < kCols; ++c) hd[size_t(c)] = 0.1 + double((c * 37) % 11);
  const CompressedTensor base = rtn3(w);
  const uint64_t base_bits = base.storage_bits();
  for (bool requant : {false, true}) {
    double prev = INFINITY;
    std::vector<uint32_t> prev_set;
    for (double f : {0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1}) {
      CompressedTensor q = base;
      add_outliers(q, w.data(), hd.data(), {f, requant});
      const size_t k = size_t(std::llround(f * double(kRows * kCols)));
      ASSERT_EQ(q.outlier_index.size(), k);
      EXPECT_TRUE(std::is_sorted(q.outlier_index.begin(), q.outlier_index.end()));
      EXPECT_EQ(q.storage_bits(), base_bits + k * 48);
      const auto d = q.dequantize().to_f32();
      for (size_t j = 0; j < k; ++j)
        EXPECT_EQ(d[q.outlier_index[j]], f16_to_f32(f32_to_f16(w[q.outlier_index[j]])));
      const double e = weighted_sq_error(w.data(), d.data(), kRows, kCols, hd.data());
      EXPECT_LT(e, prev) << f << requant;
      prev = e;
      if (!requant) {  // nested sets: a larger fraction keeps every earlier outlier
        EXPECT_TRUE(std::includes(q.outlier_index.begin(), q.outlier_index.end(), prev_set.begin(),
                                  prev_set.end()));
        prev_set = q.outlier_index;
      }
    }
  }
}

TEST(Outliers, TopErrorsByIndependentRanking) {
  const auto w = gaussian(size_t(kRows * kCols), 8, 0.05f);
  const CompressedTensor base = rtn3(w);
  const auto d0 = base.dequantize().to_f32();
  std::vector<std::pair<double, uint32_t>> ranked;
  for (uint32_t i = 0; i < d0.size(); ++i) {
    const double e = std::pow(double(w[i]) - d0[i], 2);
    ranked.push_back({-e, i});
  }
  std::sort(ranked.begin(), ranked.end());
  CompressedTensor q = base;
  add_outliers(q, w.data(), nullptr, {0.01, false});
  std::vector<uint32_t> want;
  for (size_t j = 0; j < q.outlier_index.size(); ++j) want.push_back(ranked[j].second);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(q.outlier_index, want);
}

TEST(Outliers, RequantisingHelpsAndWorksOnGptqAndGidx) {
  const auto w = laplace(size_t(kRows * kCols), 11, 0.02f);
  CompressedTensor a = rtn3(w), b = rtn3(w);
  add_outliers(a, w.data(), nullptr, {0.01, false});
  add_outliers(b, w.data(), nullptr, {0.01, true});
  const auto da = a.dequantize().to_f32(), db = b.dequantize().to_f32();
  EXPECT_LT(weighted_sq_error(w.data(), db.data(), kRows, kCols, nullptr),
            0.9 * weighted_sq_error(w.data(), da.data(), kRows, kCols, nullptr));
  // Act-order GPTQ codes (g_idx groups) take outliers too.
  const auto x = correlated_inputs(64, kCols, 2);
  GptqOptions g;
  g.bits = 3, g.group_size = 32, g.act_order = true;
  CompressedTensor c = quantize_gptq(w.data(), kRows, kCols, stats_of(x, 64, kCols), g);
  ASSERT_FALSE(c.g_idx.empty());
  const double before =
      weighted_sq_error(w.data(), c.dequantize().to_f32().data(), kRows, kCols, nullptr);
  add_outliers(c, w.data(), nullptr, {0.02, true});
  EXPECT_LT(weighted_sq_error(w.data(), c.dequantize().to_f32().data(), kRows, kCols, nullptr),
            before);
}

TEST(Outliers, BadParameters) {
  const auto w = gaussian(size_t(kRows * kCols), 1);
  CompressedTensor q = rtn3(w);
  EXPECT_THROW(add_outliers(q, w.data(), nullptr, {1.5, false}), Error);
  CompressedTensor dense = dense_tensor(Tensor::from_f32(w, {kRows, kCols}), "d");
  EXPECT_THROW(add_outliers(dense, w.data(), nullptr, {0.01, false}), Error);
}
