#include "app/studio/sensitivity_data.h"

#include <QCollator>
#include <algorithm>
#include <map>

namespace mcw::studio {

static void apply(ui::SensitivityCell& cell, const std::string& metric, double value) {
  if (metric == "kl")
    cell.kl = value, cell.ready = true;
  else if (metric == "perplexity")
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
  std::map<std::pair<QString, QString>, ui::SensitivityCell> cells;
  for (const SensitivityEntry& e : entries)
    apply(cells[{QString::fromStdString(e.layer), QString::fromStdString(e.setting)}], e.metric,
          e.value);
  return build(cells, layer_order);
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
