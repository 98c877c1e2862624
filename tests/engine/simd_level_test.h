// Shared by the kernel tests that run once per SIMD path: a fixture that selects the
// path for the test (skipping it where the CPU lacks it) and restores the default after,
// the parameter list and names for INSTANTIATE_TEST_SUITE_P, and uniform random inputs.
#pragma once
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/kernels/cpu_features.h"

namespace mcw::test {

class SimdLevelTest : public testing::TestWithParam<SimdLevel> {
 protected:
  void SetUp() override {
    set_simd_level(GetParam());
    if (cpu_features().level != GetParam())
      GTEST_SKIP() << "CPU lacks " << simd_level_name(GetParam());
  }
  void TearDown() override { set_simd_level(SimdLevel::Avx512); }
};

inline auto all_simd_levels() {
  return testing::Values(SimdLevel::Generic, SimdLevel::Avx2, SimdLevel::Avx512);
}

inline std::string simd_level_test_name(const testing::TestParamInfo<SimdLevel>& info) {
  return simd_level_name(info.param);
}

// count values uniform in [-1, 1).
inline std::vector<float> uniform_floats(size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace mcw::test
