// ProjectContext's runs: the run jobs (baseline when missing, then recipes, each recorded
// in the project's run store through the job's own connection) and the run list the
// panels read, reloaded in the background after every phase of a run.
#include <QFileInfo>
#include <stdexcept>

#include "app/image_io/qt_image_loader.h"
#include "app/studio/project_context.h"
#include "engine/core/error.h"
#include "engine/runs/project_runner.h"

namespace mcw::studio {

namespace {

// How far into one recorded run each phase starts, as a share of the run (compress,
// evaluation and latency are of the same order on small models).
double phase_start(const std::string& phase, bool baseline) {
  if (phase == "compress") return 0;
  if (phase == "eval") return baseline ? 0 : 0.35;
  if (phase == "latency") return 0.85;
  return 0;
}

double phase_share(const std::string& phase, bool baseline) {
  if (phase == "compress") return 0.35;
  if (phase == "eval") return baseline ? 0.85 : 0.5;
  return 0.15;
}

QString format_outcome(const QString& recipe, const std::vector<Metric>& metrics) {
  QString line = QStringLiteral("run '%1' done:").arg(recipe);
  auto add = [&](const char* name, const QString& label, int precision) {
    for (const Metric& m : metrics)
      if (m.name == name)
        line += QStringLiteral(" %1 %2,").arg(label).arg(m.value, 0, 'f', precision);
  };
  add("cer", QStringLiteral("CER"), 4);  // an ONNX recogniser's runs
  add("line_accuracy", QStringLiteral("exact lines"), 3);
  add("perplexity", QStringLiteral("perplexity"), 4);
  add("kl", QStringLiteral("KL"), 5);
  add("top1", QStringLiteral("top-1"), 4);
  add("bits_per_weight", QStringLiteral("bits/weight"), 3);
  add("latency_ms_per_token", QStringLiteral("ms/token"), 3);
  add("latency_ms_per_image", QStringLiteral("ms/image"), 1);
  line.chop(1);
  return line;
}

}  // namespace

void ProjectContext::onRunStoreFailed(const QString& message) {
  log(QStringLiteral("error: ") + message);
  const QString db = summary_.database_path;
  if (db.isEmpty() || damaged_store_offered_ == db || !run_store_is_damaged(db.toStdString())) return;
  damaged_store_offered_ = db;
  emit damagedRunStore(db, message);
}

bool ProjectContext::startFreshRunStore() {
  const QString db = summary_.database_path;
  if (db.isEmpty() || !run_store_is_damaged(db.toStdString())) {
    log(QStringLiteral("error: the run store %1 is not damaged; nothing was moved").arg(db));
    return false;
  }
  try {
    const std::string aside = set_aside_run_store(db.toStdString());
    log(QStringLiteral("the damaged run store was kept as %1; runs start afresh in %2")
            .arg(QString::fromStdString(aside), db));
  } catch (const std::exception& e) {
    log(QStringLiteral("error: ") + QString::fromStdString(e.what()));
    return false;
  }
  damaged_store_offered_.clear();
  run_history_.setSource({}, {});  // drops the connection to the moved file
  updateRunSource();
  return true;
}

void ProjectContext::updateRunSource() {
  if (!project_) {
    run_history_.setSource({}, {});
    return;
  }
  run_history_.setSource(summary_.database_path, QString::fromStdString(project_->name));
}

QList<ui::LayerMetricRow> ProjectContext::runLayerMetrics(qint64 run_id) {
  return run_history_.layerMetrics(run_id);
}

QList<ui::CurvePointRow> ProjectContext::runCurve(qint64 run_id) { return run_history_.curve(run_id); }

QList<qint64> ProjectContext::paretoFront(const QString& x_metric, const QString& y_metric,
                                          bool maximize_y) const {
  return run_history_.paretoFront(x_metric, y_metric, maximize_y);
}

int ProjectContext::startRun(const QString& recipe) {
  return startRecipeJob(QStringLiteral("Run %1").arg(recipe), {recipe});
}

int ProjectContext::startRunAll() {
  QStringList names;
  if (project_)
    for (const ProjectRecipe& r : project_->recipes) names << QString::fromStdString(r.name);
  if (project_ && names.isEmpty()) {
    log(QStringLiteral("error: the project has no recipes to run"));
    return 0;
  }
  return startRecipeJob(QStringLiteral("Run all recipes"), names);
}

int ProjectContext::startRecipeJob(const QString& job_name, const QStringList& names) {
  if (!project_) {
    log(QStringLiteral("error: running a recipe needs an open project"));
    return 0;
  }
  // The model, texts and evaluation settings come from the saved project file (what
  // `mcw run` would use); the recipes from the project as edited, so that an edited
  // recipe runs as it reads on screen.
  if (project_file_.isEmpty()) {
    log(
        QStringLiteral("error: save the project before running recipes (runs are stored "
                       "beside the project file)"));
    return 0;
  }
  std::vector<ProjectRecipe> recipes;
  // What each run is expected to take, recorded with it to compare with what it took.
  std::vector<std::vector<Metric>> estimates;
  for (const QString& name : names) {
    const auto it =
        std::find_if(project_->recipes.begin(), project_->recipes.end(),
                     [&](const ProjectRecipe& r) { return r.name == name.toStdString(); });
    if (it == project_->recipes.end()) {
      log(QStringLiteral("error: the project has no recipe '%1'").arg(name));
      return 0;
    }
    recipes.push_back(*it);
    estimates.push_back(estimate_metrics(estimateProjectRecipe(name)));
  }
  if (dirty_)
    log(
        QStringLiteral("note: the project has unsaved changes; the run uses the saved model, "
                       "datasets and evaluation settings"));
  const std::string file = project_file_.toStdString();
  return bridge_.start(job_name, [this, file, recipes, estimates](JobContext& job) {
    job.progress(0, QStringLiteral("load"), QString::fromStdString(file));
    const ProjectRunInputs in = load_project_run_inputs(file, qt_load_image);
    job.cancel().throw_if_cancelled();
    const std::unique_ptr<RunStore> store = RunStore::open(in.database_path);
    const bool need_baseline = !has_project_baseline(*store, in);
    const double units = double(recipes.size() + (need_baseline ? 1 : 0));
    double unit = 0;
    bool baseline = false;
    std::string phase;
    RunHooks hooks;
    hooks.on_phase = [&](const std::string& p) {
      phase = p;
      job.post([this] { run_history_.reload(); });  // the run row appears, its status moves
    };
    hooks.progress = [&](const ProgressEvent& e) {
      const double within =
          phase_start(phase, baseline) + phase_share(phase, baseline) * e.fraction;
      job.progress(std::min(1.0, (unit + within) / units), QString::fromStdString(phase),
                   QString::fromStdString(e.item.empty() ? e.stage : e.item));
    };
    hooks.log = [&](const std::string& line) { job.log(QString::fromStdString(line)); };
    auto after = [&](const QString& name, const RecipeRunOutcome& out) {
      job.post([this] { run_history_.reload(); });
      if (out.status == RunStatus::Cancelled) job.cancel().throw_if_cancelled();
      if (out.status == RunStatus::Done) job.log(format_outcome(name, out.metrics));
      unit += 1;
    };
    if (need_baseline) {
      baseline = true;
      job.log(
          QStringLiteral("no baseline run on this model yet: measuring the uncompressed "
                         "model first"));
      const RecipeRunOutcome out = run_project_baseline(*store, in, hooks, &job.cancel());
      after(QString::fromLatin1(kBaselineRecipe), out);
      if (out.status == RunStatus::Failed) throw std::runtime_error(out.error);
      baseline = false;
    }
    QStringList failed;
    std::string last_error;
    for (size_t i = 0; i < recipes.size(); ++i) {
      const ProjectRecipe& r = recipes[i];
      const QString name = QString::fromStdString(r.name);
      const RecipeRunOutcome out = run_project_recipe(*store, in, r, hooks, &job.cancel());
      if (out.run_id > 0 && !estimates[i].empty()) store->add_metrics(out.run_id, estimates[i]);
      after(name, out);
      if (out.status == RunStatus::Failed) {
        failed << name;
        last_error = out.error;
        if (recipes.size() > 1)
          job.log(QStringLiteral("error: run '%1' failed: %2")
                      .arg(name, QString::fromStdString(out.error)));
      }
    }
    if (recipes.size() == 1 && !failed.isEmpty()) throw std::runtime_error(last_error);
    if (!failed.isEmpty())
      throw std::runtime_error(QStringLiteral("%1 of %2 recipes failed: %3")
                                   .arg(failed.size())
                                   .arg(recipes.size())
                                   .arg(failed.join(QStringLiteral(", ")))
                                   .toStdString());
  });
}

}  // namespace mcw::studio
