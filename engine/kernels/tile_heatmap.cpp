#include "engine/kernels/tile_heatmap.h"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <limits>
#include <string>

#include "engine/core/error.h"

namespace mcw {

void clamp_tile_grid(int64_t rows, int64_t cols, int* gh, int* gw) {
  if (rows <= 0 || cols <= 0 || *gh <= 0 || *gw <= 0)
    throw Error("tile heatmap", "a " + std::to_string(rows) + "x" + std::to_string(cols) +
                                    " matrix cannot be tiled " + std::to_string(*gh) + "x" +
                                    std::to_string(*gw));
  *gh = int(std::min<int64_t>(*gh, rows));
  *gw = int(std::min<int64_t>(*gw, cols));
}

TileHeatmap make_tile_heatmap(int64_t rows, int64_t cols, int gh, int gw) {
  clamp_tile_grid(rows, cols, &gh, &gw);
  TileHeatmap h;
  h.rows = rows, h.cols = cols, h.grid_h = gh, h.grid_w = gw;
  const size_t n = size_t(gh) * size_t(gw);
  h.min.assign(n, 0), h.max.assign(n, 0), h.mean_abs.assign(n, 0);
  h.zeros.assign(n, 0), h.finite.assign(n, 0);
  return h;
}

TileHeatmap tile_heatmap(const float* data, int64_t rows, int64_t cols, int gh, int gw,
                         const CancelToken* cancel) {
  TileHeatmap h = make_tile_heatmap(rows, cols, gh, gw);
  const tbb::blocked_range2d<int> tiles(0, h.grid_h, 0, h.grid_w);
  tbb::parallel_for(tiles, [&](const tbb::blocked_range2d<int>& r) {
    if (cancel && cancel->cancelled()) return;
    for (int i = r.rows().begin(); i < r.rows().end(); ++i) {
      const int64_t r0 = h.row_begin(i), r1 = h.row_begin(i + 1);
      for (int j = r.cols().begin(); j < r.cols().end(); ++j) {
        const int64_t c0 = h.col_begin(j), c1 = h.col_begin(j + 1);
        float lo = std::numeric_limits<float>::infinity(), hi = -lo;
        double sum = 0;
        uint64_t zeros = 0, finite = 0;
        for (int64_t row = r0; row < r1; ++row) {
          const float* p = data + row * cols;
          for (int64_t c = c0; c < c1; ++c) {
            const float v = p[c];
            if (!std::isfinite(v)) continue;
            lo = std::min(lo, v), hi = std::max(hi, v);
            sum += std::fabs(v);
            zeros += v == 0.0f;
            ++finite;
          }
        }
        const size_t k = h.index(i, j);
        h.min[k] = finite ? lo : 0.0f;
        h.max[k] = finite ? hi : 0.0f;
        h.mean_abs[k] = finite ? float(sum / double(finite)) : 0.0f;
        h.zeros[k] = zeros;
        h.finite[k] = finite;
      }
    }
  });
  if (cancel) cancel->throw_if_cancelled();
  return h;
}

void matrix_view(const Tensor& t, int64_t* rows, int64_t* cols) {
  const int64_t n = t.numel();
  if (t.ndim() >= 2 && t.dim(0) > 0) {
    *rows = t.dim(0);
    *cols = n / t.dim(0);
  } else {
    *rows = 1;
    *cols = n;
  }
  if (t.ndim() == 0) *rows = *cols = 1;
}

}  // namespace mcw
