// Tile heatmaps: the oneTBB version against a naive loop that walks the matrix once and
// assigns each element to its tile by search, and the Vulkan shader against the CPU version
// (on lavapipe here; skipped where no Vulkan driver exists).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "engine/core/error.h"
#include "engine/kernels/tile_heatmap.h"
#ifdef MCW_HAVE_VULKAN
#include "engine/kernels/vulkan/tile_heatmap_vulkan.h"
#endif

using namespace mcw;

namespace {

struct NaiveTile {
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  uint64_t zeros = 0, finite = 0, count = 0;
};

// Tile index of an element: the largest t with t*n/g <= x, found by linear search (an
// independent reading of the boundary rule in tile_heatmap.h).
int tile_of(int64_t x, int64_t n, int g) {
  int t = 0;
  while (t + 1 < g && int64_t(t + 1) * n / g <= x) ++t;
  return t;
}

std::vector<NaiveTile> naive(const std::vector<float>& w, int64_t rows, int64_t cols, int gh,
                             int gw) {
  std::vector<NaiveTile> t(size_t(gh) * size_t(gw));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      NaiveTile& x = t[size_t(tile_of(r, rows, gh)) * size_t(gw) + size_t(tile_of(c, cols, gw))];
      const float v = w[size_t(r * cols + c)];
      ++x.count;
      if (!std::isfinite(v)) continue;
      x.lo = std::min<double>(x.lo, v), x.hi = std::max<double>(x.hi, v);
      x.sum += std::fabs(v), x.zeros += v == 0, ++x.finite;
    }
  return t;
}

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed, double zero_p) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  std::bernoulli_distribution zero(zero_p);
  std::vector<float> w(size_t(rows * cols));
  for (float& v : w) v = zero(rng) ? 0.0f : normal(rng);
  return w;
}

void expect_matches_naive(const std::vector<float>& w, int64_t rows, int64_t cols, int gh, int gw) {
  SCOPED_TRACE(testing::Message() << rows << "x" << cols << " into " << gh << "x" << gw);
  const TileHeatmap h = tile_heatmap(w.data(), rows, cols, gh, gw);
  const int eh = int(std::min<int64_t>(gh, rows)), ew = int(std::min<int64_t>(gw, cols));
  ASSERT_EQ(h.grid_h, eh);
  ASSERT_EQ(h.grid_w, ew);
  const std::vector<NaiveTile> ref = naive(w, rows, cols, eh, ew);
  for (int i = 0; i < eh; ++i)
    for (int j = 0; j < ew; ++j) {
      const size_t k = h.index(i, j);
      const NaiveTile& x = ref[k];
      ASSERT_GT(x.count, 0u) << "empty tile " << i << "," << j;
      EXPECT_EQ(uint64_t(h.tile_count(i, j)), x.count);
      EXPECT_EQ(h.finite[k], x.finite);
      EXPECT_EQ(h.zeros[k], x.zeros);
      if (x.finite) {
        EXPECT_EQ(h.min[k], float(x.lo));
        EXPECT_EQ(h.max[k], float(x.hi));
        EXPECT_NEAR(h.mean_abs[k], x.sum / double(x.finite), 1e-6);
        EXPECT_NEAR(h.zero_density(i, j), double(x.zeros) / double(x.count), 1e-6);
      } else {
        EXPECT_EQ(h.mean_abs[k], 0.0f);
      }
    }
}

}  // namespace

TEST(TileHeatmap, MatchesNaiveOnUnevenTiles) {
  expect_matches_naive(random_matrix(37, 53, 1, 0.3), 37, 53, 5, 7);      // neither divides
  expect_matches_naive(random_matrix(64, 64, 2, 0.0), 64, 64, 8, 8);      // even tiles
  expect_matches_naive(random_matrix(1, 100, 3, 0.5), 1, 100, 4, 9);      // one row
  expect_matches_naive(random_matrix(100, 1, 4, 0.5), 100, 1, 6, 6);      // one column
  expect_matches_naive(random_matrix(3, 5, 5, 0.2), 3, 5, 16, 16);        // grid larger
  expect_matches_naive(random_matrix(129, 300, 6, 0.1), 129, 300, 1, 1);  // one tile
}

TEST(TileHeatmap, NonFiniteValuesAreLeftOut) {
  std::vector<float> w = {1, -2, std::numeric_limits<float>::quiet_NaN(), 0, INFINITY, -INFINITY,
                          3, 0};
  // 2x4 into 1x2 tiles: left [1 -2 / Inf -Inf], right [NaN 0 / 3 0].
  const TileHeatmap h = tile_heatmap(w.data(), 2, 4, 1, 2);
  EXPECT_EQ(h.finite[0], 2u);
  EXPECT_EQ(h.min[0], -2.0f);
  EXPECT_EQ(h.max[0], 1.0f);
  EXPECT_FLOAT_EQ(h.mean_abs[0], 1.5f);
  EXPECT_EQ(h.zeros[1], 2u);
  EXPECT_EQ(h.finite[1], 3u);
  EXPECT_FLOAT_EQ(h.mean_abs[1], 1.0f);
  EXPECT_FLOAT_EQ(h.zero_density(0, 1), 0.5f);
  expect_matches_naive(w, 2, 4, 2, 3);
}

TEST(TileHeatmap, RejectsEmptyShapes) {
  const float x = 1;
  EXPECT_THROW(tile_heatmap(&x, 0, 4, 2, 2), Error);
  EXPECT_THROW(tile_heatmap(&x, 1, 1, 0, 2), Error);
}

TEST(TileHeatmap, MatrixViewOfTensors) {
  int64_t r = 0, c = 0;
  matrix_view(Tensor::zeros(DType::F32, {4, 3, 2}), &r, &c);
  EXPECT_EQ(r, 4);
  EXPECT_EQ(c, 6);
  matrix_view(Tensor::zeros(DType::F32, {7}), &r, &c);
  EXPECT_EQ(r, 1);
  EXPECT_EQ(c, 7);
}

#ifdef MCW_HAVE_VULKAN
TEST(TileHeatmapVulkan, MatchesCpu) {
  std::string reason;
  auto vk = vulkan::VulkanCompute::shared(&reason);
  if (!vk) GTEST_SKIP() << "Vulkan unavailable: " << reason;
  struct Case {
    int64_t rows, cols;
    int gh, gw;
  };
  for (const Case& c : {Case{37, 53, 5, 7}, Case{1, 1000, 3, 64}, Case{3, 5, 16, 16},
                        Case{512, 384, 64, 48}, Case{100, 1, 7, 2}, Case{257, 129, 1, 1}}) {
    SCOPED_TRACE(testing::Message() << c.rows << "x" << c.cols << " into " << c.gh << "x" << c.gw);
    std::vector<float> w = random_matrix(c.rows, c.cols, uint32_t(c.rows * 7 + c.cols), 0.25);
    if (w.size() > 10) w[3] = std::numeric_limits<float>::quiet_NaN(), w[9] = -INFINITY;
    const TileHeatmap cpu = tile_heatmap(w.data(), c.rows, c.cols, c.gh, c.gw);
    const TileHeatmap gpu = vulkan::tile_heatmap_vulkan(*vk, w.data(), c.rows, c.cols, c.gh, c.gw);
    ASSERT_EQ(gpu.grid_h, cpu.grid_h);
    ASSERT_EQ(gpu.grid_w, cpu.grid_w);
    for (size_t k = 0; k < cpu.min.size(); ++k) {
      EXPECT_EQ(gpu.min[k], cpu.min[k]) << k;
      EXPECT_EQ(gpu.max[k], cpu.max[k]) << k;
      EXPECT_NEAR(gpu.mean_abs[k], cpu.mean_abs[k], 1e-5 * (1 + cpu.mean_abs[k])) << k;
      EXPECT_EQ(gpu.zeros[k], cpu.zeros[k]) << k;
      EXPECT_EQ(gpu.finite[k], cpu.finite[k]) << k;
    }
  }
}

TEST(TileHeatmapVulkan, DeviceIsNamed) {
  std::string reason;
  auto vk = vulkan::VulkanCompute::shared(&reason);
  if (!vk) GTEST_SKIP() << "Vulkan unavailable: " << reason;
  EXPECT_FALSE(vk->device_name().empty());
  EXPECT_GE(vk->max_workgroup_count(0), 65535u);
}
#endif

#ifdef MCW_HAVE_VULKAN
TEST(TileHeatmapVulkan, BadDeviceIndexIsOneLineError) {
  setenv("MCW_VULKAN_DEVICE", "99", 1);
  try {
    vulkan::VulkanCompute vk;
    unsetenv("MCW_VULKAN_DEVICE");
    FAIL() << "device 99 accepted";
  } catch (const Error& e) {
    unsetenv("MCW_VULKAN_DEVICE");
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("Vulkan: ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}
#endif
