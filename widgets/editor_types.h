// Plain data of the recipe editor and the sensitivity heatmap, filled by app/ from engine
// types (recipe schema, parse results, resource estimates, the run store's sensitivity
// cache). Nothing here includes the engine.
#pragma once
#include <QList>
#include <QString>
#include <QStringList>
#include <QVariant>
#include <QtGlobal>
#include <cmath>

namespace mcw::ui {

// One parameter of an algorithm, as the form shows it.
struct ParamSpecRow {
  QString key, type;        // type: "int", "number", "bool", "string"
  QVariant fallback;        // default; invalid = required
  QVariantList allowed;     // empty: any value of the type
  double min = 0, max = 0;  // a range when min < max
  QString help;
};

struct AlgorithmSpecRow {
  QString name, kind, help;
  QList<ParamSpecRow> params;
};

struct RecipeStageForm {
  QString algorithm;
  QVariantMap params;  // every key of the algorithm, defaults filled in
  QStringList targets, ignore;
  int line = 0;  // 1-based line of the stage in the YAML
};

struct RecipeForm {
  QString name, description;
  QVariantMap calibration;  // "windows", "window" when given
  QList<RecipeStageForm> stages;
  QVariantMap recovery;  // the recovery section (edited as YAML), kept through form edits
};

struct RecipePreset {
  QString name;
  QString source;  // a file path, or "(inline)" for a project recipe kept in the project
  QString text;
  bool in_project = false;
};

struct ResourceEstimateRow {
  bool valid = false;
  quint64 peak_bytes = 0;
  double seconds = 0;
  quint64 free_bytes = 0;  // the machine's available memory; 0 when unknown
  QString note;            // why there is no estimate ("open a model ...")
  bool exceedsFree() const { return valid && free_bytes > 0 && peak_bytes > free_bytes; }
};

// The editor's YAML, checked: parsed, its targets matched against the open model, and its
// resources estimated.
struct RecipeCheck {
  bool ok = false;
  int line = 0;     // 1-based line of the error; 0 when it has none
  QString message;  // one line, "line 5: stage 1 (gptq): unknown key 'bitz' (...)"
  RecipeForm form;  // when ok
  ResourceEstimateRow estimate;
};

struct SensitivityCell {
  bool ready = false;  // false: not measured yet (drawn as pending)
  double value = 0;    // under the grid's measure: KL, or a proxy's relative error
  double perplexity = std::nan("");  // NaN when not measured
  quint64 bits = 0;  // storage bits of the compressed layer (0: not recorded)
  double latency_ms = std::nan("");  // one decode step through it, on this machine
};

// Layers (rows, model order) × settings (columns) of one model's sensitivity results,
// all of one measure (the exact KL, or a proxy).
struct SensitivityGrid {
  QStringList layers, settings;
  QList<SensitivityCell> cells;  // row-major, layers.size() * settings.size()
  QString status;                // one line for the panel ("12 of 56 cells cached")
  QString quantity = QStringLiteral("KL");  // the values' short name, for legend and tooltip
  QString title = QStringLiteral("KL divergence to the original model");  // the panel's caption
  // This machine's per-layer latency table when the store has one (mcw predict --latency):
  // per row the uncompressed layer's decode time, and the uncompressed model's step.
  QList<double> dense_latency_ms;
  double model_latency_ms = std::nan("");
  const SensitivityCell& at(int row, int col) const { return cells[row * settings.size() + col]; }
};

// What a what-if assignment over the sensitivity grid (one setting or "keep" per layer)
// is predicted to give (engine/search/recipe_prediction.h): size and bits per weight
// exactly, KL as the sum of the assigned cells with a band fitted on the project's runs,
// perplexity through the runs' fit. Unknown figures are NaN.
struct AssignmentPrediction {
  bool valid = false;
  QString error;  // why there is no prediction ("2 assigned cells are not measured yet")
  int compressed = 0, kept = 0;  // layers
  double bits_per_weight = 0;
  double size_bytes = 0;
  QString quantity;  // the grid's measure: "KL" or a proxy's name
  double score = 0;  // Σ of the assigned cells under that measure
  double kl = std::nan(""), kl_low = std::nan(""), kl_high = std::nan("");
  double perplexity = std::nan(""), perplexity_low = std::nan(""), perplexity_high = std::nan("");
  double latency_ms = std::nan("");  // decode ms/token, when a latency table is known
  int calibration_runs = 0;  // runs with a prediction and a measured KL (a band needs 2)
  int perplexity_runs = 0;   // runs the perplexity fit used (it needs a baseline run too)
  // The budget of the search whose recipe the assignment started from (NaN: none), on the
  // cost metric it limits ("bits_per_weight", "size_bytes", "latency_ms_per_token").
  QString budget_metric;
  double budget = std::nan("");
};

}  // namespace mcw::ui
