// The tile heatmap (engine/kernels/tile_heatmap.h) computed by a Vulkan compute shader
// (shaders/tile_heatmap.comp). Same tiles and the same result as the CPU version, up to
// float rounding of mean |w| (the shader sums in f32 per tile).
#pragma once
#include "engine/kernels/tile_heatmap.h"
#include "engine/kernels/vulkan/vulkan_compute.h"

namespace mcw::vulkan {

// Throws mcw::Error ("Vulkan: ...") when the matrix does not fit the device's limits (more
// than 2^32 elements or one storage buffer) or the device fails; callers fall back to the
// CPU version.
TileHeatmap tile_heatmap_vulkan(VulkanCompute& vk, const float* data, int64_t rows, int64_t cols,
                                int gh, int gw);

}  // namespace mcw::vulkan
