// Tile heatmap of a 4096x4096 f32 matrix into 512x512 tiles (the tensor inspector's view
// of one large projection): the oneTBB CPU version and the Vulkan shader, including the
// upload into a host-visible buffer. Where the only Vulkan device is lavapipe the "GPU"
// runs on the same CPU cores.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "engine/kernels/tile_heatmap.h"
#ifdef MCW_HAVE_VULKAN
#include "engine/kernels/vulkan/tile_heatmap_vulkan.h"
#endif

using namespace mcw;

static constexpr int64_t kRows = 4096, kCols = 4096;
static constexpr int kGrid = 512;

static const std::vector<float>& matrix() {
  static const std::vector<float> w = [] {
    std::vector<float> v(size_t(kRows * kCols));
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (size_t i = 0; i < v.size(); ++i) v[i] = (i % 3 == 0) ? 0.0f : normal(rng);
    return v;
  }();
  return w;
}

static void BM_TileHeatmapCpu(benchmark::State& state) {
  const std::vector<float>& w = matrix();
  for (auto _ : state) {
    TileHeatmap h = tile_heatmap(w.data(), kRows, kCols, kGrid, kGrid);
    benchmark::DoNotOptimize(h.mean_abs.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * kRows * kCols * 4);
}
BENCHMARK(BM_TileHeatmapCpu)->Unit(benchmark::kMillisecond)->UseRealTime();

#ifdef MCW_HAVE_VULKAN
static void BM_TileHeatmapVulkan(benchmark::State& state) {
  std::string reason;
  auto vk = vulkan::VulkanCompute::shared(&reason);
  if (!vk) {
    state.SkipWithError(("Vulkan unavailable: " + reason).c_str());
    return;
  }
  state.SetLabel(vk->device_name());
  const std::vector<float>& w = matrix();
  for (auto _ : state) {
    TileHeatmap h = vulkan::tile_heatmap_vulkan(*vk, w.data(), kRows, kCols, kGrid, kGrid);
    benchmark::DoNotOptimize(h.mean_abs.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * kRows * kCols * 4);
}
BENCHMARK(BM_TileHeatmapVulkan)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

BENCHMARK_MAIN();
