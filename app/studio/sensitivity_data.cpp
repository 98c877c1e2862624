#include "app/studio/sensitivity_data.h"

#include <QCollator>
#include <algorithm>
#include <cmath>
#include <map>

#include "engine/search/layer_latency.h"

namespace mcw::studio {

// A stored metric name as {quantity, measurement}: the engine's scan keys its values
// "kl@8x256#<digest>" (what was measured: windows, window, a digest of the setting and
// text); plain "kl" has an empty measurement.
static std::pair<std::string, std::string> split_metric(const std::string& metric) {
  const size_t at = metric.find('@');
  if (at == std::string::npos) return {metric, {}};
  return {metric.substr(0, at), metric.substr(at + 1)};
}

// The measures a cell's value can be, in the order the grid prefers them (the exact one
// first), with the names the panel shows.
struct Measure {
  const char* key;
  const char* quantity;
  const char* title;
};
static const Measure kMeasures[] = {
    {"kl", "KL", "KL divergence to the original model"},
    {"block", "block err", "Relative output error of the layer's block (proxy)"},
    {"layer", "layer err", "Relative output error of the layer (proxy)"},
    {"map", "map err", "Relative squared error of the graph's output map"}};

static const Measure* measure_of(const std::string& quantity) {
  for (const Measure& m : kMeasures)
    if (quantity == m.key) return &m;
  return nullptr;
}

static bool shows(const ui::SensitivityGrid& g, const Measure& m) {
  return g.quantity == QLatin1String(m.quantity);
}

static void set_measure(ui::SensitivityGrid& g, const Measure& m) {
  g.quantity = QString::fromLatin1(m.quantity);
  g.title = QString::fromLatin1(m.title);
}

// Puts a stored value into its cell when it is of the grid's measure (or a perplexity).
static void apply(const ui::SensitivityGrid& g, ui::SensitivityCell& cell, const std::string& metric,
                  double value) {
  const std::string quantity = split_metric(metric).first;
  if (const Measure* m = measure_of(quantity); m && shows(g, *m))
    cell.value = value, cell.ready = true;
  else if (quantity == "perplexity" || quantity == "ppl")
    cell.perplexity = value;
  else if (quantity == "bits")
    cell.bits = quint64(std::max(0.0, value));
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

// After a re-layout: the rows' dense latency (by layer) and the model's step carried over.
static void carry_latency(const ui::SensitivityGrid& from, ui::SensitivityGrid& to) {
  to.model_latency_ms = from.model_latency_ms;
  to.dense_latency_ms = QList<double>(to.layers.size(), std::nan(""));
  for (int r = 0; r < from.layers.size() && r < from.dense_latency_ms.size(); ++r)
    if (const int row = int(to.layers.indexOf(from.layers[r])); row >= 0)
      to.dense_latency_ms[row] = from.dense_latency_ms[r];
}

ui::SensitivityGrid sensitivity_grid(const std::vector<SensitivityEntry>& entries,
                                     const std::vector<std::string>& layer_order,
                                     const std::string& latency_metric) {
  // A store may hold several measurements of one setting (scans over different texts or
  // windows): each setting shows the one with the most measured cells, never a mixture.
  const Measure* shown = &kMeasures[0];
  for (const Measure& m : kMeasures)
    if (std::any_of(entries.begin(), entries.end(), [&](const SensitivityEntry& e) {
          return split_metric(e.metric).first == m.key;
        })) {
      shown = &m;
      break;
    }
  std::map<std::string, std::map<std::string, int>> counts;  // setting -> measurement -> cells
  for (const SensitivityEntry& e : entries)
    if (const auto [quantity, measurement] = split_metric(e.metric); quantity == shown->key)
      ++counts[e.setting][measurement];
  std::map<std::string, std::string> chosen;
  for (const auto& [setting, by_measurement] : counts)
    chosen[setting] = std::max_element(by_measurement.begin(), by_measurement.end(),
                                       [](const auto& a, const auto& b) {
                                         return a.second < b.second;
                                       })->first;
  ui::SensitivityGrid labels;
  set_measure(labels, *shown);
  std::map<std::pair<QString, QString>, ui::SensitivityCell> cells;
  for (const SensitivityEntry& e : entries) {
    const auto it = chosen.find(e.setting);
    if (it == chosen.end() || it->second != split_metric(e.metric).second) continue;
    apply(labels, cells[{QString::fromStdString(e.layer), QString::fromStdString(e.setting)}],
          e.metric, e.value);
  }
  ui::SensitivityGrid g = build(cells, layer_order);
  set_measure(g, *shown);
  g.dense_latency_ms = QList<double>(g.layers.size(), std::nan(""));
  if (latency_metric.empty()) return g;
  for (const SensitivityEntry& e : entries) {
    if (e.metric != latency_metric) continue;
    const QString layer = QString::fromStdString(e.layer), setting = QString::fromStdString(e.setting);
    const int row = int(g.layers.indexOf(layer)), col = int(g.settings.indexOf(setting));
    if (e.setting == kDenseSetting && e.layer == kModelLayer) g.model_latency_ms = e.value;
    else if (e.setting == kDenseSetting && row >= 0) g.dense_latency_ms[row] = e.value;
    else if (row >= 0 && col >= 0) g.cells[row * g.settings.size() + col].latency_ms = e.value;
  }
  return g;
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
  if (cells.size() != before || g.cells.size() != qsizetype(before)) {
    const ui::SensitivityGrid before = g;
    g = build(cells, layer_order);
    g.quantity = before.quantity, g.title = before.title;
    carry_latency(before, g);
  }
}

std::pair<int, int> put_sensitivity(ui::SensitivityGrid& g, const SensitivityEntry& e,
                                    const std::vector<std::string>& layer_order, bool* reshaped) {
  const QString layer = QString::fromStdString(e.layer),
                setting = QString::fromStdString(e.setting);
  *reshaped = false;
  // A value of another measure: the cells shown so far are of the old one.
  if (const Measure* m = measure_of(split_metric(e.metric).first); m && !shows(g, *m)) {
    for (ui::SensitivityCell& c : g.cells) c = {.latency_ms = c.latency_ms};  // latency stays
    set_measure(g, *m);
    *reshaped = true;
  }
  int row = int(g.layers.indexOf(layer)), col = int(g.settings.indexOf(setting));
  if (row < 0 || col < 0) {
    *reshaped = true;
    const ui::SensitivityGrid before = g;
    std::map<std::pair<QString, QString>, ui::SensitivityCell> cells;
    for (int r = 0; r < g.layers.size(); ++r)
      for (int c = 0; c < g.settings.size(); ++c) cells[{g.layers[r], g.settings[c]}] = g.at(r, c);
    cells[{layer, setting}];  // the new cell, pending
    g = build(cells, layer_order);
    g.quantity = before.quantity, g.title = before.title;
    carry_latency(before, g);
    row = int(g.layers.indexOf(layer)), col = int(g.settings.indexOf(setting));
  }
  apply(g, g.cells[row * g.settings.size() + col], e.metric, e.value);
  g.status = status_of(g);
  return {row, col};
}

}  // namespace mcw::studio
