// Tensor statistics on every SIMD path against a naive double-precision two-pass loop.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/core/blocks.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/tensor_stats.h"
#include "simd_level_test.h"

using namespace mcw;

namespace {

TensorStats naive(const std::vector<float>& x) {
  TensorStats s;
  s.count = x.size();
  double sum = 0;
  for (float v : x) {
    if (!std::isfinite(v)) continue;
    if (!s.finite) s.min = s.max = v;
    s.min = std::min<double>(s.min, v), s.max = std::max<double>(s.max, v);
    s.finite++, s.zeros += v == 0, sum += v;
  }
  s.nonfinite = s.count - s.finite;
  if (s.finite) {
    s.mean = sum / double(s.finite);
    double m2 = 0;
    for (float v : x)
      if (std::isfinite(v)) m2 += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(m2 / double(s.finite));
  }
  return s;
}

std::vector<float> sample(size_t n, uint32_t seed, bool specials) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.3f, 2.0f);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = d(rng);
    if (i % 7 == 3) x[i] = 0;
    if (specials && i % 1001 == 5) x[i] = NAN;
    if (specials && i % 3001 == 11) x[i] = (i & 1) ? INFINITY : -INFINITY;
  }
  return x;
}

void expect_close(const TensorStats& a, const TensorStats& b) {
  EXPECT_EQ(a.count, b.count);
  EXPECT_EQ(a.finite, b.finite);
  EXPECT_EQ(a.zeros, b.zeros);
  EXPECT_EQ(a.nonfinite, b.nonfinite);
  EXPECT_EQ(a.min, b.min);
  EXPECT_EQ(a.max, b.max);
  EXPECT_NEAR(a.mean, b.mean, 1e-6 * (1 + std::fabs(b.mean)));
  EXPECT_NEAR(a.std, b.std, 1e-6 * b.std);
}

class TensorStatsLevels : public test::SimdLevelTest {};

}  // namespace

TEST_P(TensorStatsLevels, F32MatchesNaive) {
  for (size_t n : {0, 1, 15, 16, 17, 4097, 70000, 300001}) {
    for (bool specials : {false, true}) {
      const auto x = sample(n, uint32_t(n), specials);
      const Tensor t = Tensor::from_f32(x, {int64_t(n)});
      SCOPED_TRACE(testing::Message() << "n=" << n << " specials=" << specials);
      expect_close(tensor_stats(t), naive(x));
    }
  }
}

TEST_P(TensorStatsLevels, DequantisedTypesMatchNaive) {
  const auto x = sample(131072 + 64, 5, false);
  for (DType dt : {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1}) {
    Tensor t = Tensor::zeros(dt, {int64_t(x.size())});
    from_f32(dt, x.data(), t.mutable_data(), x.size());
    SCOPED_TRACE(std::string(dtype_name(dt)));
    expect_close(tensor_stats(t), naive(t.to_f32()));
  }
}

TEST(TensorStats, AllNonFinite) {
  const std::vector<float> x = {NAN, INFINITY, -INFINITY};
  const TensorStats s = tensor_stats(Tensor::from_f32(x, {3}));
  EXPECT_EQ(s.finite, 0u);
  EXPECT_EQ(s.nonfinite, 3u);
  EXPECT_EQ(s.std, 0.0);
}

INSTANTIATE_TEST_SUITE_P(All, TensorStatsLevels,
                         test::all_simd_levels(), test::simd_level_test_name);
