// The recipe editor's engine side, for ProjectContext: the algorithm schema as form rows,
// recipes to forms and back, checking YAML (parse, targets, resource estimate), presets on
// disk, and the machine's available memory. No widgets here.
#pragma once
#include <QStringList>
#include <optional>
#include <string>

#include "engine/compress/resource_estimate.h"
#include "engine/recipe/recipe.h"
#include "engine/runs/run_store.h"
#include "widgets/editor_types.h"

namespace mcw::studio {

QList<ui::AlgorithmSpecRow> algorithm_spec_rows();
ui::RecipeForm recipe_to_form(const Recipe& r);
// Throws mcw::Error for a value that is not a number/bool/string.
Recipe form_to_recipe(const ui::RecipeForm& form);

// What checking needs besides the text: the open model's shapes (none: parse only), how
// the project would calibrate and evaluate, and the free memory to warn against.
struct RecipeCheckContext {
  const ModelShape* model = nullptr;
  EstimateSettings settings;
  quint64 free_bytes = 0;  // 0: unknown
};
ui::RecipeCheck check_recipe_text(const std::string& text, const std::string& source,
                                  const RecipeCheckContext& ctx);
ui::ResourceEstimateRow estimate_row(const Recipe& r, const RecipeCheckContext& ctx);

// The metrics a run records so that estimate and actual can be compared afterwards
// (RunStore::add_metrics): estimate_seconds, estimate_peak_bytes. Empty for no estimate.
std::vector<Metric> estimate_metrics(const ui::ResourceEstimateRow& e);

// "line 12: ..." -> 12; 0 when the message names no line.
int error_line(const std::string& message);

// The *.yaml / *.yml files of `dirs` (name = the file's stem), sorted by name; files over
// 1 MiB and unreadable ones are left out.
QList<ui::RecipePreset> read_recipe_presets(const QStringList& dirs);

// MemAvailable of /proc/meminfo in bytes; nullopt where it cannot be read.
std::optional<quint64> mem_available_bytes(
    const QString& meminfo = QStringLiteral("/proc/meminfo"));

}  // namespace mcw::studio
