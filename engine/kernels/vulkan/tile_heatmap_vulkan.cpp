#include "engine/kernels/vulkan/tile_heatmap_vulkan.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "engine/core/error.h"
#include "shaders/tile_heatmap_comp.h"  // after <cstdint>: it uses uint32_t

namespace mcw::vulkan {

namespace {

struct GpuTile {  // std430 layout of the shader's Tile
  float min_v, max_v, mean_abs;
  uint32_t zeros, finite;
};
static_assert(sizeof(GpuTile) == 20);

struct Push {
  uint32_t rows, cols, gh, gw;
};

}  // namespace

TileHeatmap tile_heatmap_vulkan(VulkanCompute& vk, const float* data, int64_t rows, int64_t cols,
                                int gh, int gw) {
  TileHeatmap h = make_tile_heatmap(rows, cols, gh, gw);
  // The shader indexes and splits tiles in 32-bit arithmetic.
  constexpr uint64_t kLimit = uint64_t(1) << 32;
  const uint64_t n = uint64_t(rows) * uint64_t(cols);
  if (n >= kLimit || uint64_t(rows) * uint64_t(h.grid_h + 1) >= kLimit ||
      uint64_t(cols) * uint64_t(h.grid_w + 1) >= kLimit || n * 4 > vk.max_storage_buffer_range())
    throw Error("Vulkan", "a " + std::to_string(rows) + "x" + std::to_string(cols) +
                              " matrix is too large for the tile heatmap shader");

  const ComputePipeline& pipeline =
      vk.cached_pipeline("tile_heatmap", tile_heatmap_comp, 2, sizeof(Push));
  const size_t tiles = h.min.size();
  VulkanBuffer in = vk.buffer(size_t(n) * sizeof(float));
  VulkanBuffer out = vk.buffer(tiles * sizeof(GpuTile));
  std::memcpy(in.data(), data, size_t(n) * sizeof(float));
  const Push push{uint32_t(rows), uint32_t(cols), uint32_t(h.grid_h), uint32_t(h.grid_w)};
  const VulkanBuffer* buffers[] = {&in, &out};
  vk.dispatch(pipeline, buffers, &push, uint32_t(h.grid_w), uint32_t(h.grid_h));

  const auto* t = static_cast<const GpuTile*>(out.data());
  for (size_t k = 0; k < tiles; ++k) {
    h.min[k] = t[k].min_v;
    h.max[k] = t[k].max_v;
    h.mean_abs[k] = t[k].mean_abs;
    h.zeros[k] = t[k].zeros;
    h.finite[k] = t[k].finite;
  }
  return h;
}

}  // namespace mcw::vulkan
