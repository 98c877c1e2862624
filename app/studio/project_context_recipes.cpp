// ProjectContext's recipe-editor side: schema, presets, checking YAML against the open
// model, estimates, and adding recipes to the project.
#include <QFile>
#include <QFileInfo>
#include <filesystem>

#include "app/studio/project_context.h"
#include "engine/core/error.h"
#include "engine/io/atomic_file.h"

namespace mcw::studio {

static QString q(const std::string& s) { return QString::fromStdString(s); }

QList<ui::AlgorithmSpecRow> ProjectContext::algorithmSpecs() const { return algorithm_spec_rows(); }

// The project's recipes as the editor lists them: inline text, or the file's (at most 1 MiB).
static QList<ui::RecipePreset> project_recipes(const Project& project) {
  QList<ui::RecipePreset> out;
  for (const ProjectRecipe& r : project.recipes) {
    ui::RecipePreset p{q(r.name), QStringLiteral("(inline)"), q(r.inline_text), true};
    if (!r.is_inline()) {
      p.source = q(r.path);
      QFile f(p.source);
      if (f.size() <= (1 << 20) && f.open(QIODevice::ReadOnly))
        p.text = QString::fromUtf8(f.readAll());
      else
        p.text = QStringLiteral("# cannot read %1\n").arg(p.source);
    }
    out.push_back(p);
  }
  return out;
}

QList<ui::RecipePreset> ProjectContext::recipePresets() const {
  QList<ui::RecipePreset> out;
  if (project_) out = project_recipes(*project_);
  out += read_recipe_presets(preset_dirs_);
  return out;
}

quint64 ProjectContext::freeMemoryBytes() const {
  if (free_override_) return *free_override_;
  return mem_available_bytes().value_or(0);
}

RecipeCheckContext ProjectContext::checkContext() const {
  RecipeCheckContext c;
  c.model = shape_ ? &*shape_ : nullptr;
  // As project_runner runs a recipe: CompressOptions' calibration, the window shortened
  // to the model's context; evaluation over max_tokens, else (at most) one token a byte.
  c.settings.calib_window =
      std::min<int64_t>(c.settings.calib_window, model_context_ > 0 ? model_context_ : 256);
  if (project_) {
    std::error_code ec;
    const uint64_t bytes = project_->evaluation_path.empty()
                               ? 0
                               : std::filesystem::file_size(project_->evaluation_path, ec);
    c.settings.eval_tokens =
        project_->eval.max_tokens > 0 ? project_->eval.max_tokens : int64_t(ec ? 0 : bytes);
  }
  c.free_bytes = freeMemoryBytes();
  return c;
}

ui::RecipeCheck ProjectContext::checkRecipe(const QString& yaml) const {
  return check_recipe_text(yaml.toStdString(), "recipe", checkContext());
}

QString ProjectContext::recipeFormToYaml(const ui::RecipeForm& form, QString* error) const {
  try {
    return q(recipe_to_yaml(form_to_recipe(form)));
  } catch (const std::exception& e) {  // mcw::Error for a value-less key, yaml-cpp's own
    if (error) *error = q(e.what());
    return {};
  }
}

bool ProjectContext::addRecipeToProject(const QString& name, const QString& yaml) {
  if (!project_) {
    log(QStringLiteral("error: Add to project needs an open project"));
    return false;
  }
  std::string chosen = name.trimmed().toStdString();
  try {
    const Recipe r = parse_recipe(yaml.toStdString(), chosen.empty() ? "recipe" : chosen);
    if (chosen.empty()) chosen = r.name;
  } catch (const Error& e) {
    log(QStringLiteral("error: not added: ") + q(e.what()));
    return false;
  }
  // Same name: an inline recipe is updated; a recipe kept in its own file is left alone and
  // the new one gets a free name.
  auto find = [&](const std::string& n) {
    return std::find_if(project_->recipes.begin(), project_->recipes.end(),
                        [&](const ProjectRecipe& r) { return r.name == n; });
  };
  std::string unique = chosen;
  for (int k = 2; find(unique) != project_->recipes.end() && !find(unique)->is_inline(); ++k)
    unique = chosen + "-" + std::to_string(k);
  if (auto it = find(unique); it != project_->recipes.end())
    it->inline_text = yaml.toStdString();
  else
    project_->recipes.push_back({unique, "", yaml.toStdString()});
  dirty_ = true;
  refreshProject();
  log(QStringLiteral("recipe '%1' added to the project (unsaved)").arg(q(unique)));
  return true;
}

bool ProjectContext::saveRecipeFile(const QString& path, const QString& yaml) {
  try {
    const QByteArray bytes = yaml.toUtf8();
    write_file_atomically(path.toStdString(), std::string_view(bytes.constData(), size_t(bytes.size())));
  } catch (const Error& e) {
    log(QStringLiteral("error: ") + q(e.what()));
    return false;
  }
  log(QStringLiteral("saved recipe %1").arg(path));
  return true;
}

ui::ResourceEstimateRow ProjectContext::estimateProjectRecipe(const QString& name) const {
  ui::ResourceEstimateRow none;
  if (!project_) return none;
  for (const ui::RecipePreset& p : project_recipes(*project_)) {
    if (p.name != name) continue;
    const ui::RecipeCheck c = checkRecipe(p.text);
    if (c.ok) return c.estimate;
    none.note = c.message;
    return none;
  }
  none.note = QStringLiteral("no recipe named '%1' in the project").arg(name);
  return none;
}

QString ProjectContext::runEstimateReport(qint64 run_id) const {
  if (summary_.database_path.isEmpty() || !QFileInfo::exists(summary_.database_path)) return {};
  try {
    const auto store = RunStore::open_existing(summary_.database_path.toStdString());
    const std::optional<RunRecord> run = store->get_run(run_id);
    if (!run) return {};
    const std::optional<double> est = run->metric("estimate_seconds");
    const std::optional<double> peak = run->metric("estimate_peak_bytes");
    if (!est) return {};
    QString s = QStringLiteral("estimated %1").arg(ui::format_seconds(*est));
    if (peak) s += QStringLiteral(" / %1").arg(ui::format_bytes(quint64(*peak)));
    if (run->info.ended_at > run->info.started_at && run->info.started_at > 0)
      s += QStringLiteral(", took %1")
               .arg(ui::format_seconds(run->info.ended_at - run->info.started_at));
    return s;
  } catch (const Error&) {
    return {};
  }
}

}  // namespace mcw::studio
