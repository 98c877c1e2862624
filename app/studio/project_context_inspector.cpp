// ProjectContext: the tensor inspector's heatmap job.
#include "app/studio/project_context.h"
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

}  // namespace mcw::studio
