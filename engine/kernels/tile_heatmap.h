// A matrix summarised as a grid of tiles for the tensor inspector's heatmaps: per tile the
// minimum, maximum and mean |w| of its finite values, and its count of exact zeros (the
// density of a pruning mask). Tile (i, j) covers rows [i*rows/gh, (i+1)*rows/gh) and
// columns [j*cols/gw, (j+1)*cols/gw); a grid larger than the matrix is clamped to it, so
// no tile is empty. The CPU version (oneTBB) is the reference and the fallback of the
// Vulkan one (engine/kernels/vulkan/tile_heatmap_vulkan.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/core/progress.h"
#include "engine/core/tensor.h"

namespace mcw {

struct TileHeatmap {
  int64_t rows = 0, cols = 0;  // of the matrix
  int grid_h = 0, grid_w = 0;  // tiles, after clamping
  // Row-major [grid_h, grid_w]; min/max/mean_abs are 0 for a tile without finite values.
  std::vector<float> min, max, mean_abs;
  std::vector<uint64_t> zeros, finite;

  size_t index(int i, int j) const { return size_t(i) * size_t(grid_w) + size_t(j); }
  int64_t row_begin(int i) const { return int64_t(i) * rows / grid_h; }
  int64_t col_begin(int j) const { return int64_t(j) * cols / grid_w; }
  int64_t tile_count(int i, int j) const {
    return (row_begin(i + 1) - row_begin(i)) * (col_begin(j + 1) - col_begin(j));
  }
  float max_abs(size_t k) const { return std::max(-min[k], max[k]); }
  // Fraction of exact zeros among the tile's elements.
  float zero_density(int i, int j) const {
    return float(zeros[index(i, j)]) / float(tile_count(i, j));
  }
};

// The grid actually used for a [rows, cols] matrix asked to be [gh, gw]; throws mcw::Error
// when a dimension is not positive.
void clamp_tile_grid(int64_t rows, int64_t cols, int* gh, int* gw);

// An empty heatmap of the clamped grid, its vectors sized.
TileHeatmap make_tile_heatmap(int64_t rows, int64_t cols, int gh, int gw);

// `data` is row-major [rows, cols] f32.
TileHeatmap tile_heatmap(const float* data, int64_t rows, int64_t cols, int gh, int gw,
                         const CancelToken* cancel = nullptr);

// The rows and columns a tensor is shown as: [d0, d1*d2*...] for two or more dimensions,
// [1, n] for a vector, [1, 1] for a scalar.
void matrix_view(const Tensor& t, int64_t* rows, int64_t* cols);

}  // namespace mcw
