#include "app/studio/sensitivity_data.h"

#include <QCollator>
#include <algorithm>
#include <map>

namespace mcw::studio {

// A stored metric name as {quantity, measurement}: the engine's scan keys its values
// "kl@8x256#<digest>" (what was measured: windows, window, a digest of the setting and
// text); plain "kl" has an empty measurement.
static std::pair<std::string, std::string> split_metric(const std::string& metric) {
  const size_t at = metric.find('@');
  if (at == std::string::npos) return {metric, {}};
  return {metric.substr(0, at), metric.substr(at + 1)};
}

static void apply(ui::SensitivityCell& cell, const std::string& metric, double value) {
  const std::string quantity = split_metric(metric).first;
  if (quantity == "kl")
    cell.kl = value, cell.ready = true;
  else if (quantity == "perplexity" || quantity == "ppl")
    cell.perplexity = value;
}

static QString status_of(const ui::SensitivityGrid& g) {
  if (g.cells.isEmpty()) return QStringLiteral("No sensitivity results for this model yet.");
  const qsizetype ready = std::count_if(g.cells.begin(), g.cells.end(),
                                        [](const ui::SensitivityCell& c) { return c.ready; });
  return QStringLiteral("%1 of %2 cells measured (%3 layers × %4 settings)")
      .arg(ready)
      .arg(g.cells.size())
      .arg(g.layers.size())
      .arg(g.settings.size());
}

static ui::SensitivityGrid build(
    const std::map<std::pair<QString, QString>, ui::SensitivityCell>& cells,
    const std::vector<std::string>& order) {
  std::map<QString, size_t> rank;
  for (size_t i = 0; i < order.size(); ++i) rank.emplace(QString::fromStdString(order[i]), i);
  ui::SensitivityGrid g;
  for (const auto& [key, cell] : cells) {
    if (!g.layers.contains(key.first)) g.layers << key.first;
    if (!g.settings.contains(key.second)) g.settings << key.second;
  }
  std::stable_sort(g.layers.begin(), g.layers.end(), [&](const QString& a, const QString& b) {
    const auto ra = rank.find(a), rb = rank.find(b);
    const size_t ia = ra == rank.end() ? order.size() : ra->second;
    const size_t ib = rb == rank.end() ? order.size() : rb->second;
    return ia != ib ? ia < ib : a < b;
  });
  QCollator natural;  // "w2" < "w10", "sparse30" < "sparse50"
  natural.setNumericMode(true);
  std::sort(g.settings.begin(), g.settings.end(),
            [&](const QString& a, const QString& b) { return natural.compare(a, b) < 0; });
  g.cells.resize(g.layers.size() * g.settings.size());
  for (const auto& [key, cell] : cells)
    g.cells[g.layers.indexOf(key.first) * g.settings.size() + g.settings.indexOf(key.second)] =
        cell;
  g.status = status_of(g);
  return g;
}

ui::SensitivityGrid sensitivity_grid(const std::vector<SensitivityEntry>& entries,
                                     const std::vector<std::string>& layer_order) {
  // A store may hold several measurements of one setting (scans over different texts or
  // windows): each setting shows the one with the most measured cells, never a mixture.
  std::map<std::string, std::map<std::string, int>> counts;  // setting -> measurement -> cells
  for (const SensitivityEntry& e : entries)
    if (const auto [quantity, measurement] = split_metric(e.metric); quantity == "kl")
      ++counts[e.setting][measurement];
  std::map<std::string, std::string> chosen;
  for (const auto& [setting, by_measurement] : counts)
    chosen[setting] = std::max_element(by_measurement.begin(), by_measurement.end(),
                                       [](const auto& a, const auto& b) {
                                         return a.second < b.second;
                                       })->first;
  std::map<std::pair<QString, QString>, ui::SensitivityCell> cells;
  for (const SensitivityEntry& e : entries) {
    const auto it = chosen.find(e.setting);
    if (it == chosen.end() || it->second != split_metric(e.metric).second) continue;
    apply(cells[{QString::fromStdString(e.layer), QString::fromStdString(e.setting)}], e.metric,
          e.value);
  }
  return build(cells, layer_order);
}

void ensure_sensitivity_axes(ui::SensitivityGrid& g, const std::vector<std::string>& layers,
                             const std::vector<std::string>& settings,
                             const std::vector<std::string>& layer_order) {
  std::map<std::pair<QString, QString>, ui::SensitivityCell> cells;
  for (int r = 0; r < g.layers.size(); ++r)
    for (int c = 0; c < g.settings.size(); ++c) cells[{g.layers[r], g.settings[c]}] = g.at(r, c);
  const size_t before = cells.size();
  for (const std::string& l : layers)
    for (const std::string& s : settings)
      cells[{QString::fromStdString(l), QString::fromStdString(s)}];  // pending unless known
  if (cells.size() != before || g.cells.size() != qsizetype(before)) g = build(cells, layer_order);
}

std::pair<int, int> put_sensitivity(ui::SensitivityGrid& g, const SensitivityEntry& e,
                                    const std::vector<std::string>& layer_order, bool* reshaped) {
  const QString layer = QString::fromStdString(e.layer),
                setting = QString::fromStdString(e.setting);
  int row = int(g.layers.indexOf(layer)), col = int(g.settings.indexOf(setting));
  *reshaped = row < 0 || col < 0;
  if (*reshaped) {
    std::map<std::pair<QString, QString>, ui::SensitivityCell> cells;
    for (int r = 0; r < g.layers.size(); ++r)
      for (int c = 0; c < g.settings.size(); ++c) cells[{g.layers[r], g.settings[c]}] = g.at(r, c);
    cells[{layer, setting}];  // the new cell, pending
    g = build(cells, layer_order);
    row = int(g.layers.indexOf(layer)), col = int(g.settings.indexOf(setting));
  }
  apply(g.cells[row * g.settings.size() + col], e.metric, e.value);
  g.status = status_of(g);
  return {row, col};
}

}  // namespace mcw::studio
