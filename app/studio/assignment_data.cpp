#include "app/studio/assignment_data.h"

#include <cmath>
#include <map>
#include <optional>

#include "engine/core/error.h"
#include "engine/search/layer_latency.h"

namespace mcw::studio {

SensitivityTable grid_table(const ui::SensitivityGrid& grid, const ModelShape& shape) {
  SensitivityTable t;
  t.measure = grid.quantity == QLatin1String("KL")          ? SensitivityMeasure::Kl
              : grid.quantity == QLatin1String("block err") ? SensitivityMeasure::Block
                                                            : SensitivityMeasure::Layer;
  t.model_parameters = shape.parameters();
  std::map<std::string, const LinearShape*> linear;
  for (const LinearShape& l : shape.linears) linear[l.name] = &l;
  for (const QString& name : grid.layers) {
    const auto it = linear.find(name.toStdString());
    if (it == linear.end())
      throw Error("sensitivity grid", "the model has no linear layer " + name.toStdString());
    t.layers.push_back(it->first);
    t.layer_parameters.push_back(uint64_t(it->second->rows * it->second->cols));
    t.layer_in_features.push_back(it->second->cols);
  }
  for (const QString& label : grid.settings) {
    try {
      t.settings.push_back(scan_setting_from_label(label.toStdString()));
    } catch (const Error&) {
      t.settings.push_back({label.toStdString(), {}, nlohmann::json::object()});
    }
  }
  for (int r = 0; r < grid.layers.size(); ++r)
    for (int c = 0; c < grid.settings.size(); ++c) {
      const ui::SensitivityCell& g = grid.at(r, c);
      SensitivityCell cell;
      cell.layer = t.layers[size_t(r)];
      cell.setting = t.settings[size_t(c)].name;
      (t.measure == SensitivityMeasure::Kl ? cell.kl : cell.error) = g.value;
      cell.perplexity = std::isfinite(g.perplexity) ? g.perplexity : 0;
      cell.bits = g.bits;
      t.cells.push_back(std::move(cell));
    }
  return t;
}

// The grid's latency table when it covers the model's step, every row's dense time and
// every assigned cell (cells not assigned are not read).
static std::optional<LayerLatencyTable> grid_latency(const ui::SensitivityGrid& grid,
                                                     const SensitivityTable& table,
                                                     const std::vector<int>& a) {
  if (!std::isfinite(grid.model_latency_ms) || grid.dense_latency_ms.size() != grid.layers.size())
    return std::nullopt;
  LayerLatencyTable t;
  t.layers = table.layers;
  for (const ScanSetting& s : table.settings) t.settings.push_back(s.name);
  t.model_ms_per_token = grid.model_latency_ms;
  for (int r = 0; r < grid.layers.size(); ++r) {
    if (!std::isfinite(grid.dense_latency_ms[r])) return std::nullopt;
    if (a[size_t(r)] >= 0 && !std::isfinite(grid.at(r, a[size_t(r)]).latency_ms))
      return std::nullopt;
    t.dense_ms.push_back(grid.dense_latency_ms[r]);
    for (int c = 0; c < grid.settings.size(); ++c) t.ms.push_back(grid.at(r, c).latency_ms);
  }
  t.derive_rest();
  return t;
}

ui::AssignmentPrediction predict_grid_assignment(const ui::SensitivityGrid& grid,
                                                 const ModelShape& shape,
                                                 const QList<int>& assignment,
                                                 const PredictionCalibration& calibration) {
  ui::AssignmentPrediction out;
  out.quantity = grid.quantity;
  out.calibration_runs = int(calibration.kl_runs);
  out.perplexity_runs = calibration.baseline_perplexity > 0 ? int(calibration.perplexity_runs) : 0;
  if (assignment.size() != grid.layers.size() || grid.layers.isEmpty()) {
    out.error = QObject::tr("no sensitivity results to assign");
    return out;
  }
  int pending = 0, unsized = 0;
  for (int r = 0; r < assignment.size(); ++r) {
    const int c = assignment[r];
    if (c < -1 || c >= grid.settings.size()) {
      out.error = QObject::tr("the assignment does not fit the grid");
      return out;
    }
    if (c < 0) {
      ++out.kept;
      continue;
    }
    ++out.compressed;
    if (!grid.at(r, c).ready)
      ++pending;
    else if (grid.at(r, c).bits == 0)
      ++unsized;
  }
  if (out.compressed == 0) {
    out.error = QObject::tr("every layer is kept: assign a setting to some");
    return out;
  }
  if (pending > 0) {
    out.error = QObject::tr("%n assigned cell(s) not measured yet", nullptr, pending);
    return out;
  }
  if (unsized > 0) {
    out.error = QObject::tr("the scan did not record the size of %n assigned cell(s): scan again",
                            nullptr, unsized);
    return out;
  }
  try {
    const SensitivityTable table = grid_table(grid, shape);
    const std::vector<int> a(assignment.begin(), assignment.end());
    const std::optional<LayerLatencyTable> latency = grid_latency(grid, table, a);
    const RecipePrediction p =
        predict_assignment(table, a, calibration, latency ? &*latency : nullptr);
    out.valid = true;
    out.bits_per_weight = p.bits_per_weight;
    out.size_bytes = double(p.storage_bits) / 8;
    out.score = p.score;
    out.kl = p.kl, out.kl_low = p.kl_low, out.kl_high = p.kl_high;
    out.perplexity = p.perplexity, out.perplexity_low = p.perplexity_low;
    out.perplexity_high = p.perplexity_high;
    out.latency_ms = p.latency_ms;
  } catch (const Error& e) {
    out.error = QString::fromStdString(e.what());
  }
  return out;
}

}  // namespace mcw::studio
