// ProjectContext's what-if assignment: one setting (or keep) per layer of the
// sensitivity grid, predicted on every change from the grid's cells and the
// project's finished runs, and written as a per-layer recipe that carries its
// prediction when it is run.
#include <cmath>
#include <tuple>

#include "app/studio/assignment_data.h"
#include "app/studio/project_context.h"
#include "engine/core/error.h"
#include "engine/search/mixed_precision.h"

namespace mcw::studio {

static QString q(const std::string& s) { return QString::fromStdString(s); }

void ProjectContext::sensitivityReplaced() {
  const QStringList axes = sensitivity_.layers + QStringList{QString()} + sensitivity_.settings;
  if (axes != assignment_axes_ || assignment_.size() != sensitivity_.layers.size()) {
    assignment_axes_ = axes;
    assignment_ = QList<int>(sensitivity_.layers.size(), -1);
    assignment_budget_ = {{}, std::nan("")};
  }
  notify([](ui::IProjectViewer* v) { v->onSensitivityLoaded(); });
  updateAssignmentPrediction();
}

PredictionCalibration ProjectContext::predictionCalibration() const {
  // The runs' calibration is of this model only: until its fingerprint is known (the cache
  // read, or a scan started), predictions have no band.
  if (model_fingerprint_.empty()) return {};
  return calibrate_prediction(run_history_.doneRuns(), model_fingerprint_);
}

void ProjectContext::updateAssignmentPrediction() {
  if (!shape_) {
    prediction_ = {};
    prediction_.error = tr("open a llama-family model to predict an assignment");
  } else {
    prediction_ =
        predict_grid_assignment(sensitivity_, *shape_, assignment_, predictionCalibration());
  }
  std::tie(prediction_.budget_metric, prediction_.budget) = assignment_budget_;
  notify([](ui::IProjectViewer* v) { v->onAssignmentChanged(); });
}

void ProjectContext::setAssignment(const QList<int>& columns) {
  if (columns.size() != sensitivity_.layers.size()) return;
  assignment_ = columns;
  updateAssignmentPrediction();
}

bool ProjectContext::assignFromRecipe(const QString& name) {
  if (!project_ || !shape_) {
    log(QStringLiteral("error: an assignment from a recipe needs a project with a model"));
    return false;
  }
  const auto it = std::find_if(project_->recipes.begin(), project_->recipes.end(),
                               [&](const ProjectRecipe& r) { return q(r.name) == name; });
  if (it == project_->recipes.end()) {
    log(QStringLiteral("error: the project has no recipe '%1'").arg(name));
    return false;
  }
  try {
    const Recipe r =
        it->is_inline() ? parse_recipe(it->inline_text, it->name) : load_recipe(it->path);
    const std::vector<int> a = recipe_assignment(grid_table(sensitivity_, *shape_), r);
    // A search's recipe names its budget: the trade-off plot draws it while this is edited.
    static const std::pair<const char*, const char*> kBudgetMetric[] = {
        {"budget_bits_per_weight", "bits_per_weight"},
        {"budget_size_bytes", "size_bytes"},
        {"budget_latency_ms", "latency_ms_per_token"}};
    assignment_budget_ = {{}, std::nan("")};
    for (const auto& [key, metric] : kBudgetMetric)
      if (r.prediction.contains(key))
        assignment_budget_ = {QString::fromLatin1(metric), r.prediction[key].get<double>()};
    setAssignment(QList<int>(a.begin(), a.end()));
  } catch (const Error& e) {
    log(QStringLiteral("error: recipe '%1' as an assignment: %2").arg(name, q(e.what())));
    return false;
  }
  return true;
}

int ProjectContext::runAssignment(const QString& name) {
  if (!project_ || !shape_) {
    log(QStringLiteral("error: running an assignment needs a project with a model"));
    return 0;
  }
  if (!prediction_.valid) {
    log(QStringLiteral("error: the assignment cannot run: ") + prediction_.error);
    return 0;
  }
  const std::string n = name.trimmed().toStdString();
  for (const ProjectRecipe& r : project_->recipes)
    if (r.name == n && !r.is_inline()) {
      log(QStringLiteral("error: the project's recipe '%1' is kept in %2; "
                         "choose another name")
              .arg(name, q(r.path)));
      return 0;
    }
  QString yaml;
  try {
    const SensitivityTable table = grid_table(sensitivity_, *shape_);
    const std::vector<int> a(assignment_.begin(), assignment_.end());
    const RecipePrediction p = predict_assignment(table, a, predictionCalibration());
    yaml = q(recipe_to_yaml(assignment_recipe(table, a, n, &p)));
  } catch (const Error& e) {
    log(QStringLiteral("error: the assignment cannot be written as a recipe: ") + q(e.what()));
    return 0;
  }
  if (!addRecipeToProject(q(n), yaml)) return 0;
  return startRun(q(n));
}

}  // namespace mcw::studio
