// Turns an engine ModelFile into the rows the Model panel shows, and tensor statistics
// into a stats row. Runs on worker threads (no widgets here).
#pragma once
#include <memory>
#include <string>

#include "engine/compress/compressed_tensor.h"
#include "engine/io/model_file.h"
#include "engine/kernels/tensor_stats.h"
#include "widgets/bridge_types.h"

namespace mcw::studio {

struct OpenedModel {
  std::shared_ptr<const ModelFile> file;
  ui::ModelSummary summary;  // rows without statistics yet
};

// Throws mcw::Error when the file cannot be read. A packed export beside the model
// (packed.safetensors) is read too and its layers joined to the tensors by name; when that
// file is bad, the model still opens and summary.packed_error says why.
OpenedModel open_model_for_view(const std::string& path);

// What the Model panel shows of one compressed layer: all of it read from `t`.
ui::PackedLayerRow to_packed_row(const CompressedTensor& t);

// Per-group parameters (scales, zero points, codebooks) are kept for the packed layers of
// a model until this many values in all; the rest are left in the file
// (parameters_loaded false) and read per layer by read_packed_row. Process-wide; tests
// lower it.
void set_eager_parameter_values(int64_t values);
// Layer `name` of a packed export, whole. Throws mcw::Error naming the file.
ui::PackedLayerRow read_packed_row(const std::string& packed_path, const std::string& name);

// Multiply-accumulates per token of a tensor applied as a matrix: rows x cols for a 2-D
// weight, 0 for vectors and for an embedding table that is only looked up (it counts
// when it doubles as the output projection, i.e. no separate output tensor exists).
quint64 macs_per_token(const ModelFile& model, const Tensor& t);

ui::TensorStatsRow to_stats_row(const TensorStats& s);

}  // namespace mcw::studio
