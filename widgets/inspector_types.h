// What the tensor inspector shows of one tensor: its tile heatmap (per-tile mean |w|,
// max |w| and fraction of exact zeros) and a histogram of its values. app/ fills it from
// the engine's tile_heatmap and value_histogram; widgets never see engine types.
#pragma once
#include <QString>
#include <QtGlobal>
#include <vector>

namespace mcw::ui {

struct TensorHeatmapData {
  QString name;   // the tensor; empty while none is requested
  QString error;  // one line when it could not be computed
  bool loading = false;
  qint64 rows = 0, cols = 0;  // the matrix view: [d0, rest], [1, n] for a vector
  int grid_h = 0, grid_w = 0;
  QString backend;  // "Vulkan (llvmpipe ...)" or "CPU"
  // Row-major [grid_h, grid_w].
  std::vector<float> mean_abs, max_abs, zero_density;
  double hist_lo = 0, hist_hi = 0;  // the histogram's value range
  std::vector<float> histogram;     // counts per equal-width bin of finite values

  bool ready() const { return !loading && error.isEmpty() && grid_h > 0 && grid_w > 0; }
  // The first row / column of tile i / j (i == grid_h gives rows).
  qint64 rowBegin(int i) const { return grid_h ? qint64(i) * rows / grid_h : 0; }
  qint64 colBegin(int j) const { return grid_w ? qint64(j) * cols / grid_w : 0; }
};

}  // namespace mcw::ui
