// The tensor inspector's data for one tensor of an open model: its tile heatmap (on the
// Vulkan device when there is one, else the oneTBB CPU version) and a histogram of its
// values. Runs on a worker thread (no widgets here).
#pragma once
#include <string>

#include "engine/core/progress.h"
#include "engine/io/model_file.h"
#include "widgets/inspector_types.h"

namespace mcw::studio {

inline constexpr int kHistogramBins = 64;
// Tensors above this many values are not converted to f32 for the inspector (a 1 GiB copy).
inline constexpr int64_t kMaxInspectedValues = int64_t(1) << 28;

// Throws mcw::Error when the tensor is missing, empty or too large, mcw::Cancelled when
// `cancel` fires. The tiles are computed by Vulkan when `use_vulkan` is set and a GPU is
// present, else by the CPU kernel (also when the only device is a software one).
ui::TensorHeatmapData compute_tensor_heatmap(const ModelFile& model, const std::string& tensor,
                                             int grid_h, int grid_w, const CancelToken& cancel,
                                             bool use_vulkan = true);

}  // namespace mcw::studio
