#include "engine/compress/layer_error.h"

#include <cstddef>
#include <vector>

#include "engine/kernels/gram.h"

namespace mcw {

LayerError layer_error(const float* a, const float* b, int64_t rows, int64_t cols,
                       const LayerStats* stats) {
  std::vector<float> d(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < d.size(); ++i) d[i] = a[i] - b[i];
  if (!stats || stats->xtx.empty()) {
    LayerError e;
    for (size_t i = 0; i < d.size(); ++i) {
      const double h = stats ? stats->sq_norm[i % size_t(cols)] : 1.0;
      e.change += h * d[i] * d[i], e.signal += h * a[i] * a[i];
    }
    return e;
  }
  return {weighted_square_norm(d.data(), rows, cols, stats->xtx.data()),
          weighted_square_norm(a, rows, cols, stats->xtx.data())};
}

}  // namespace mcw
