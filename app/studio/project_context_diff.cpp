// ProjectContext: the model diff job. The open model is A (already mapped); B is opened on
// the worker thread, compared there, and the rows come back to the UI thread in one post.
#include <QFileInfo>

#include "app/studio/model_diff_data.h"
#include "app/studio/project_context.h"
#include "engine/core/error.h"

namespace mcw::studio {

int ProjectContext::startModelDiff(const QString& other_path) {
  if (!model_file_) {
    log(QStringLiteral("error: Compare with model needs an open model (%1)")
            .arg(model_.loading ? tr("still opening") : tr("none is open")));
    return 0;
  }
  bridge_.cancel(diff_.job_id);  // a new comparison replaces the last one
  const int gen = ++diff_generation_;
  const std::shared_ptr<const ModelFile> a = model_file_;
  const QString b_path = QFileInfo(other_path).absoluteFilePath();
  diff_ = {};
  diff_.state = ui::ModelDiffState::Running;
  diff_.path_a = model_.path;
  diff_.path_b = b_path;

  // Everything the worker hands back goes through here, dropped once a newer diff (or
  // another model) replaced this one.
  auto deliver = [this, gen](JobContext& job, std::function<void(ui::ModelDiffResult&)> apply) {
    job.post([this, gen, apply = std::move(apply)] {
      if (gen != diff_generation_) return;
      apply(diff_);
      notify([](ui::IProjectViewer* v) { v->onModelDiffUpdated(); });
    });
  };
  diff_.job_id = bridge_.start(tr("Model diff"), [a, b_path, deliver](JobContext& job) {
    try {
      job.progress(0, QStringLiteral("open"), b_path);
      const ModelFile b = open_model_file(b_path.toStdString());
      const ProgressFn progress = [&job](const ProgressEvent& e) {
        job.progress(e.fraction, QStringLiteral("diff"), QString::fromStdString(e.item));
      };
      const ModelDiff diff = diff_models(*a, b, progress, &job.cancel());
      auto result = std::make_shared<ui::ModelDiffResult>(to_diff_result(diff));
      job.log(QStringLiteral("Model diff %1 vs %2: %3")
                  .arg(QFileInfo(result->path_a).fileName(), QFileInfo(b_path).fileName(),
                       ui::model_diff_summary_text(result->summary)));
      deliver(job, [result](ui::ModelDiffResult& d) {
        const int id = d.job_id;
        d = std::move(*result);
        d.job_id = id;
      });
    } catch (const Cancelled&) {
      deliver(job, [](ui::ModelDiffResult& d) { d.state = ui::ModelDiffState::Cancelled; });
      throw;
    } catch (const std::exception& e) {
      const QString message = QString::fromStdString(e.what());
      deliver(job, [message](ui::ModelDiffResult& d) {
        d.state = ui::ModelDiffState::Failed;
        d.error = message;
      });
      throw;
    }
  });
  log(QStringLiteral("comparing %1 with %2").arg(diff_.path_a, b_path));
  notify([](ui::IProjectViewer* v) { v->onModelDiffUpdated(); });
  return diff_.job_id;
}

void ProjectContext::cancelModelDiff() {
  if (diff_.state == ui::ModelDiffState::Running) bridge_.cancel(diff_.job_id);
}

void ProjectContext::clearModelDiff() {
  if (diff_.state == ui::ModelDiffState::None) return;
  bridge_.cancel(diff_.job_id);
  ++diff_generation_;
  diff_ = {};
  notify([](ui::IProjectViewer* v) { v->onModelDiffUpdated(); });
}

}  // namespace mcw::studio
