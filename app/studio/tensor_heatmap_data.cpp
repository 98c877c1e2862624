#include "app/studio/tensor_heatmap_data.h"

#include <cstdint>

#include "engine/core/error.h"
#include "engine/kernels/tile_heatmap.h"
#include "engine/kernels/value_histogram.h"
#ifdef MCW_HAVE_VULKAN
#include "engine/kernels/vulkan/tile_heatmap_vulkan.h"
#endif

namespace mcw::studio {

ui::TensorHeatmapData compute_tensor_heatmap(const ModelFile& model, const std::string& name,
                                             int grid_h, int grid_w, const CancelToken& cancel,
                                             bool use_vulkan) {
  const Tensor* t = model.find(name);
  if (!t) throw Error(model.path, "no tensor named " + name);
  if (t->numel() <= 0) throw Error(model.path, name + " has no values");
  if (t->numel() > kMaxInspectedValues)
    throw Error(model.path, name + " has " + std::to_string(t->numel()) +
                                " values, more than the inspector's limit of " +
                                std::to_string(kMaxInspectedValues));
  int64_t rows = 0, cols = 0;
  matrix_view(*t, &rows, &cols);
  std::vector<float> converted;
  const float* values = nullptr;
  if (t->dtype() == DType::F32 && reinterpret_cast<uintptr_t>(t->data()) % alignof(float) == 0) {
    values = t->as<float>();
  } else {
    converted = t->to_f32();
    values = converted.data();
  }
  cancel.throw_if_cancelled();

  ui::TensorHeatmapData d;
  d.name = QString::fromStdString(name);
  d.rows = rows;
  d.cols = cols;
  TileHeatmap h;
  bool done = false;
#ifdef MCW_HAVE_VULKAN
  if (use_vulkan) {
    // A software device (lavapipe) is ~70x slower than the oneTBB kernel on the same cores
    // (docs/PERFORMANCE.md, tile heatmap): use the GPU only when there is one.
    auto vk = vulkan::VulkanCompute::shared();
    if (vk && !vk->is_cpu_device()) {
      try {
        h = vulkan::tile_heatmap_vulkan(*vk, values, rows, cols, grid_h, grid_w);
        d.backend = QStringLiteral("Vulkan (%1)").arg(QString::fromStdString(vk->device_name()));
        done = true;
      } catch (const Error&) {  // too large for the device: the CPU does it
      }
    }
  }
#else
  (void)use_vulkan;
#endif
  if (!done) {
    h = tile_heatmap(values, rows, cols, grid_h, grid_w, &cancel);
    d.backend = QStringLiteral("CPU");
  }
  cancel.throw_if_cancelled();
  d.grid_h = h.grid_h;
  d.grid_w = h.grid_w;
  const size_t n = h.min.size();
  d.mean_abs = h.mean_abs;
  d.max_abs.resize(n);
  d.zero_density.resize(n);
  for (int i = 0; i < h.grid_h; ++i)
    for (int j = 0; j < h.grid_w; ++j) {
      const size_t k = h.index(i, j);
      d.max_abs[k] = h.max_abs(k);
      d.zero_density[k] = h.zero_density(i, j);
    }
  const ValueHistogram hist = value_histogram(values, size_t(rows * cols), kHistogramBins);
  d.hist_lo = hist.lo;
  d.hist_hi = hist.hi;
  d.histogram.assign(hist.counts.begin(), hist.counts.end());
  return d;
}

}  // namespace mcw::studio
