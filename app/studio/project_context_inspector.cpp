// ProjectContext: per-tensor data read on demand (the tensor inspector's heatmap, a packed
// layer's per-group parameters).
#include "app/studio/project_context.h"
#include "app/studio/model_data.h"
#include "app/studio/tensor_heatmap_data.h"
#include "engine/core/error.h"

namespace mcw::studio {

void ProjectContext::requestTensorHeatmap(const QString& tensor, int grid_h, int grid_w) {
  bridge_.cancel(heatmap_job_);
  const int gen = ++heatmap_generation_;
  heatmap_ = {};
  heatmap_.name = tensor;
  if (!model_file_) {
    heatmap_.error = QStringLiteral("no model is open");
    notify([](ui::IProjectViewer* v) { v->onTensorHeatmapUpdated(); });
    return;
  }
  heatmap_.loading = true;
  notify([](ui::IProjectViewer* v) { v->onTensorHeatmapUpdated(); });
  std::shared_ptr<const ModelFile> file = model_file_;
  const std::string name = tensor.toStdString();
  heatmap_job_ = bridge_.start(
      QStringLiteral("Inspect tensor"), [this, gen, file, name, grid_h, grid_w](JobContext& job) {
        job.progress(0, QStringLiteral("heatmap"), QString::fromStdString(name));
        auto data = std::make_shared<ui::TensorHeatmapData>();
        auto deliver = [this, gen, data, &job] {
          job.post([this, gen, data] {
            if (gen != heatmap_generation_) return;
            heatmap_ = std::move(*data);
            notify([](ui::IProjectViewer* v) { v->onTensorHeatmapUpdated(); });
          });
        };
        try {
          *data = compute_tensor_heatmap(*file, name, grid_h, grid_w, job.cancel());
        } catch (const Error& e) {  // shown in the inspector, and the job fails with it
          data->name = QString::fromStdString(name);
          data->error = QString::fromStdString(e.what());
          deliver();
          throw;
        }
        deliver();
      });
}

// A large export's per-group parameters stay in the file until the panel shows the layer
// (model_data.h); a failed read is logged by its job and leaves the layer's table empty.
void ProjectContext::requestPackedParameters(int index) {
  if (index < 0 || index >= model_.packed.size() || model_.packed[index].parameters_loaded ||
      packed_parameters_pending_.contains(index))
    return;
  packed_parameters_pending_.insert(index);
  const int gen = model_generation_;
  const std::string path = model_.packed_path.toStdString();
  const std::string name = model_.packed[index].name.toStdString();
  bridge_.start(QStringLiteral("Read layer parameters"), [this, gen, index, path, name](JobContext& job) {
    job.progress(0, QStringLiteral("read"), QString::fromStdString(name));
    auto row = std::make_shared<ui::PackedLayerRow>();
    auto deliver = [this, gen, index, row, &job] {
      job.post([this, gen, index, row] {
        if (gen != model_generation_ || index >= model_.packed.size()) return;
        packed_parameters_pending_.remove(index);
        ui::PackedLayerRow& p = model_.packed[index];
        p.scales = std::move(row->scales), p.zeros = std::move(row->zeros);
        p.codebook = std::move(row->codebook);
        p.parameters_loaded = true;
        notify([index](ui::IProjectViewer* v) { v->onPackedParametersLoaded(index); });
      });
    };
    try {
      *row = read_packed_row(path, name);
    } catch (const Error&) {
      deliver();  // empty: no retry loop on a file that went bad
      throw;
    }
    deliver();
  });
}

}  // namespace mcw::studio
