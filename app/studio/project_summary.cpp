#include "app/studio/project_summary.h"

namespace mcw::studio {

static QString q(const std::string& s) { return QString::fromStdString(s); }

ui::ProjectSummary summarize_project(const Project& p, const QString& file, bool dirty) {
  ui::ProjectSummary s;
  s.file = file;
  s.name = q(p.name);
  s.model_path = q(p.model_path);
  s.calibration_path = q(p.calibration_path);
  s.evaluation_path = q(p.evaluation_path);
  s.database_path = q(p.database_path.empty() && !file.isEmpty()
                          ? default_database_path(file.toStdString(), p.name)
                          : p.database_path);
  for (const ProjectRecipe& r : p.recipes)
    s.recipes.push_back({q(r.name), r.is_inline() ? QStringLiteral("(inline)") : q(r.path)});
  s.window = p.eval.window;
  s.stride = p.eval.stride;
  s.max_tokens = p.eval.max_tokens;
  for (const ProjectProblem& pr : check_project(p))
    s.problems.push_back(q(pr.field) + QStringLiteral(": ") + q(pr.message));
  s.dirty = dirty;
  return s;
}

}  // namespace mcw::studio
