#include "engine/report/report_tables.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "engine/report/report_text.h"

namespace mcw {

namespace {

std::string metric_cell(const RunRecord& r, const char* name, int digits = 4) {
  const auto v = r.metric(name);
  return v ? format_general(*v, digits) : "-";
}

bool is_compressed_done(const RunRecord& r) {
  return r.info.status == RunStatus::Done && r.info.recipe_name != "baseline";
}

// The run with the smallest finite value of `metric` among compressed done runs.
const RunRecord* min_run(const ReportData& d, const char* metric) {
  const RunRecord* best = nullptr;
  double bv = 0;
  for (const RunRecord& r : d.runs) {
    const auto v = r.metric(metric);
    if (!is_compressed_done(r) || !v || !std::isfinite(*v)) continue;
    if (!best || *v < bv) best = &r, bv = *v;
  }
  return best;
}

template <class T>
void add_unique(std::vector<T>& v, const T& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

}  // namespace

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit((unsigned char)a[i]), db = std::isdigit((unsigned char)b[j]);
    if (da && db) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit((unsigned char)a[ie])) ++ie;
      while (je < b.size() && std::isdigit((unsigned char)b[je])) ++je;
      // Compare without leading zeros: first by length, then digit by digit.
      size_t is = i, js = j;
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int c = a.compare(is, ie - is, b, js, je - js);
      if (c != 0) return c < 0;
      i = ie, j = je;
    } else {
      if (a[i] != b[j]) return (unsigned char)a[i] < (unsigned char)b[j];
      ++i, ++j;
    }
  }
  if ((a.size() - i) != (b.size() - j)) return a.size() - i < b.size() - j;
  return a < b;  // equal under the natural order ("01" vs "1"): keep a strict weak order
}

std::string run_title(const RunRecord& r) {
  return "run " + std::to_string(r.info.id) + " \xC2\xB7 " + r.info.recipe_name;
}

const std::vector<RunColumn>& report_run_columns() {
  static const std::vector<RunColumn> cols = {
      {"Run", true,
       [](const ReportData& d, size_t i) { return std::to_string(d.runs[i].info.id); }},
      {"Recipe", false, [](const ReportData& d, size_t i) { return d.runs[i].info.recipe_name; }},
      {"Status", false,
       [](const ReportData& d, size_t i) {
         return std::string(run_status_name(d.runs[i].info.status));
       }},
      {"Perplexity", true,
       [](const ReportData& d, size_t i) { return metric_cell(d.runs[i], "perplexity", 5); }},
      {"vs baseline", true,
       [](const ReportData& d, size_t i) -> std::string {
         const RunRecord* b = d.baseline();
         const auto v = d.runs[i].metric("perplexity");
         const auto bv = b ? b->metric("perplexity") : std::nullopt;
         if (!v || !bv || !(*bv > 0) || &d.runs[i] == b) return "-";
         const double pct = (*v / *bv - 1) * 100;
         std::string out(pct >= 0 ? "+" : "");
         out += format_fixed(pct, std::fabs(pct) < 10 ? 2 : 1);
         out += '%';
         return out;
       }},
      {"KL", true, [](const ReportData& d, size_t i) { return metric_cell(d.runs[i], "kl"); }},
      {"Top-1", true,
       [](const ReportData& d, size_t i) -> std::string {
         const auto v = d.runs[i].metric("top1");
         return v ? format_fixed(*v * 100, 1) + "%" : "-";
       }},
      {"Bits/weight", true,
       [](const ReportData& d, size_t i) -> std::string {
         const auto v = d.runs[i].metric("bits_per_weight");
         return v ? format_fixed(*v, 3) : "-";
       }},
      {"Size", true,
       [](const ReportData& d, size_t i) -> std::string {
         const auto v = d.runs[i].metric("size_bytes");
         return v ? format_bytes(*v) : "-";
       }},
      {"ms/token", true,
       [](const ReportData& d, size_t i) {
         return metric_cell(d.runs[i], "latency_ms_per_token");
       }},
      {"Prefill tok/s", true,
       [](const ReportData& d, size_t i) -> std::string {
         const auto v = d.runs[i].metric("prefill_tokens_per_s");
         return v ? format_fixed(*v, 0) : "-";
       }},
      {"Pareto front", false,
       [](const ReportData& d, size_t i) -> std::string {
         std::string s;
         if (d.on_front_latency(i)) s = "latency";
         if (d.on_front_size(i)) s += s.empty() ? "size" : ", size";
         return s.empty() ? "-" : s;
       }},
  };
  return cols;
}

std::vector<std::string> report_metric_names(const ReportData& d) {
  std::vector<std::string> names;
  for (const RunRecord& r : d.runs)
    for (const Metric& m : r.metrics) add_unique(names, m.name);
  return names;
}

ReportHighlights report_highlights(const ReportData& d) {
  ReportHighlights h;
  h.baseline = d.baseline();
  h.most_accurate = min_run(d, "perplexity");
  h.smallest = min_run(d, "size_bytes");
  h.fastest = min_run(d, "latency_ms_per_token");
  return h;
}

std::vector<ReportGrid> report_sensitivity_grids(const ReportData& d) {
  // The scan keys its values "kl@8x256#<digest>" (what was measured): one grid per
  // quantity, each setting showing the measurement with the most cells, never a mixture.
  auto split = [](const std::string& m) {
    const size_t at = m.find('@');
    return at == std::string::npos ? std::pair(m, std::string())
                                   : std::pair(m.substr(0, at), m.substr(at + 1));
  };
  std::vector<std::string> metrics;
  std::map<std::pair<std::string, std::string>, std::map<std::string, int>> counts;
  for (const SensitivityEntry& e : d.sensitivity) {
    const auto [quantity, measurement] = split(e.metric);
    add_unique(metrics, quantity);
    ++counts[{quantity, e.setting}][measurement];
  }
  std::map<std::pair<std::string, std::string>, std::string> chosen;
  for (const auto& [key, by] : counts)
    chosen[key] = std::max_element(by.begin(), by.end(), [](const auto& a, const auto& b) {
                    return a.second < b.second;
                  })->first;
  std::map<std::string, size_t> model_order;
  for (size_t i = 0; i < d.model.tensors.size(); ++i)
    model_order.emplace(d.model.tensors[i].name, i);
  std::vector<ReportGrid> out;
  for (const std::string& metric : metrics) {
    ReportGrid g;
    g.metric = metric;
    std::map<std::pair<std::string, std::string>, double> value;
    for (const SensitivityEntry& e : d.sensitivity) {
      const auto [quantity, measurement] = split(e.metric);
      if (quantity != metric || chosen[{quantity, e.setting}] != measurement) continue;
      add_unique(g.rows, e.layer);
      add_unique(g.columns, e.setting);
      value[{e.layer, e.setting}] = e.value;
    }
    std::sort(g.rows.begin(), g.rows.end(), [&](const std::string& a, const std::string& b) {
      const auto ia = model_order.find(a), ib = model_order.find(b);
      const bool ka = ia != model_order.end(), kb = ib != model_order.end();
      if (ka != kb) return ka;
      if (ka) return ia->second < ib->second;
      return natural_less(a, b);
    });
    std::sort(g.columns.begin(), g.columns.end(), natural_less);
    for (const auto& r : g.rows)
      for (const auto& c : g.columns) {
        const auto it = value.find({r, c});
        g.values.push_back(it == value.end() ? NAN : it->second);
      }
    out.push_back(std::move(g));
  }
  return out;
}

ReportGrid report_layer_grid(const ReportData& d, const std::vector<size_t>& runs,
                             const std::string& metric) {
  ReportGrid g;
  g.metric = metric;
  for (size_t i : runs) {
    g.columns.push_back(run_title(d.runs[i]));
    for (const LayerMetric& m : d.runs[i].layers)
      if (m.name == metric) add_unique(g.rows, m.layer);
  }
  std::map<std::string, size_t> row_of;
  for (size_t r = 0; r < g.rows.size(); ++r) row_of.emplace(g.rows[r], r);
  g.values.assign(g.rows.size() * runs.size(), NAN);
  for (size_t c = 0; c < runs.size(); ++c)
    for (const LayerMetric& m : d.runs[runs[c]].layers)
      if (m.name == metric) g.values[row_of.at(m.layer) * runs.size() + c] = m.value;
  return g;
}

std::vector<std::vector<size_t>> report_recipe_groups(const ReportData& d) {
  std::vector<std::vector<size_t>> groups;
  std::map<std::pair<std::string, std::string>, size_t> group_of;
  for (size_t i = 0; i < d.runs.size(); ++i) {
    const RunInfo& r = d.runs[i].info;
    const auto [it, fresh] =
        group_of.emplace(std::make_pair(r.recipe_name, r.recipe_text), groups.size());
    if (fresh) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  return groups;
}

}  // namespace mcw
