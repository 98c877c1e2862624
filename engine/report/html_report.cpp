#include "engine/report/html_report.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/report/report_tables.h"
#include "engine/report/report_text.h"
#include "engine/report/report_recovery.h"
#include "engine/report/svg_plot.h"

namespace mcw {

namespace {

std::string H(std::string_view s) { return escape_html(s); }

// No '<', '>' or '&' in here: the document stays well-formed XML.
constexpr const char* kCss = R"css(
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb; --bg: #f6f7f9; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
header.top { background: #111827; color: #f9fafb; padding: 28px 0 24px; }
header.top .wrap, main { max-width: 1120px; margin: 0 auto; padding-left: 32px; padding-right: 32px; }
header.top .kicker { text-transform: uppercase; letter-spacing: .08em; font-size: 11px; color: #9ca3af; }
header.top h1 { margin: 4px 0 6px; font-size: 26px; font-weight: 650; }
header.top .meta { color: #d1d5db; font-size: 13px; }
nav.toc { margin-top: 14px; font-size: 13px; }
nav.toc a { color: #93c5fd; text-decoration: none; margin-right: 16px; }
main { padding-top: 8px; padding-bottom: 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 20px 24px;
  margin: 20px 0; }
h2 { font-size: 18px; margin: 0 0 4px; }
h3 { font-size: 14px; margin: 18px 0 6px; }
p.note { color: var(--muted); margin: 2px 0 14px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; background: #fbfbfc; }
.card .label { font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.card .value { font-size: 20px; font-weight: 650; margin: 2px 0; overflow-wrap: anywhere; }
.card .detail { font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 8px 32px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: #374151; background: #f9fafb; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.facts th { width: 34%; background: none; color: var(--muted); font-weight: 500; white-space: normal; }
table.facts td { overflow-wrap: anywhere; }
tr.front td:first-child { box-shadow: inset 3px 0 0 var(--accent); }
tr.err td { color: #991b1b; background: #fef2f2; font-size: 12px; }
.scroll { overflow-x: auto; }
.pill { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.pill.done { background: #dcfce7; color: #166534; }
.pill.failed { background: #fee2e2; color: #991b1b; }
.pill.cancelled, .pill.interrupted { background: #fef3c7; color: #92400e; }
.pill.running, .pill.queued { background: #dbeafe; color: #1e40af; }
.warn { border-left: 4px solid #f59e0b; background: #fffbeb; padding: 8px 12px; margin: 10px 0; }
.empty { color: var(--muted); font-style: italic; }
figure { margin: 8px 0 0; }
figure svg { max-width: 100%; height: auto; display: block; }
pre { background: #0f172a; color: #e2e8f0; padding: 12px 14px; border-radius: 8px; overflow-x: auto;
  font: 12px/1.45 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; white-space: pre-wrap;
  overflow-wrap: anywhere; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin: 24px 0; }
@media print { body { background: #fff; } section { break-inside: avoid; border: none; padding: 8px 0; }
  header.top { background: #fff; color: #000; } header.top .meta { color: #333; } nav.toc { display: none; } }
)css";

std::string fact_row(const std::string& key, const std::string& value_html) {
  return "<tr><th>" + H(key) + "</th><td>" + value_html + "</td></tr>\n";
}

std::string card(const std::string& label, const std::string& value, const std::string& detail) {
  return "<div class=\"card\"><div class=\"label\">" + H(label) + "</div><div class=\"value\">" +
         H(value) + "</div><div class=\"detail\">" + H(detail) + "</div></div>\n";
}

std::string metric_text(const RunRecord& r, const char* name, int digits = 4) {
  const auto v = r.metric(name);
  return v ? format_general(*v, digits) : "-";
}

std::string size_text(const RunRecord& r) {
  const auto v = r.metric("size_bytes");
  return v ? format_bytes(*v) : "-";
}

std::string summary(const ReportData& d) {
  std::string s = "<section id=\"summary\"><h2>Summary</h2>\n";
  if (d.runs.empty()) {
    s += "<p class=\"empty\">No runs recorded yet";
    s += d.database_exists ? " in " + H(d.database_path)
                           : " (the run database " + H(d.database_path) + " does not exist yet)";
    s += ". Run <code>mcw run " + H(d.project_file) +
         "</code> to compress the model with the project's recipes.</p>\n";
    return s + "</section>\n";
  }
  const ReportHighlights h = report_highlights(d);
  std::string counts = std::to_string(d.count(RunStatus::Done)) + " done";
  for (RunStatus st : {RunStatus::Failed, RunStatus::Cancelled, RunStatus::Interrupted,
                       RunStatus::Running, RunStatus::Queued})
    if (const size_t n = d.count(st))
      counts += ", " + std::to_string(n) + " " + run_status_name(st);
  s += "<div class=\"cards\">\n";
  s += card("Runs", std::to_string(d.runs.size()), counts);
  if (h.baseline)
    s += card("Baseline perplexity", metric_text(*h.baseline, "perplexity", 5),
              "uncompressed, " + size_text(*h.baseline) + ", " +
                  metric_text(*h.baseline, "latency_ms_per_token") + " ms/token");
  auto vs_base = [&](const RunRecord& r) {
    const auto v = r.metric("perplexity");
    const auto b = h.baseline ? h.baseline->metric("perplexity") : std::nullopt;
    if (!v || !b || !(*b > 0)) return std::string();
    const double pct = (*v / *b - 1) * 100;
    return " (" + std::string(pct >= 0 ? "+" : "") + format_fixed(pct, 1) + "% vs baseline)";
  };
  if (h.most_accurate)
    s += card("Most accurate compressed", h.most_accurate->info.recipe_name,
              "perplexity " + metric_text(*h.most_accurate, "perplexity", 5) +
                  vs_base(*h.most_accurate) + ", " + size_text(*h.most_accurate));
  if (h.smallest)
    s += card("Smallest", h.smallest->info.recipe_name,
              size_text(*h.smallest) + ", " + metric_text(*h.smallest, "bits_per_weight") +
                  " bits/weight, perplexity " + metric_text(*h.smallest, "perplexity", 5));
  if (h.fastest)
    s += card("Fastest", h.fastest->info.recipe_name,
              metric_text(*h.fastest, "latency_ms_per_token") + " ms/token, perplexity " +
                  metric_text(*h.fastest, "perplexity", 5));
  s += "</div>\n";
  auto front_list = [&](const std::vector<size_t>& f) {
    std::string out;
    for (size_t i : f) out += (out.empty() ? "" : ", ") + H(run_title(d.runs[i]));
    return out.empty() ? std::string("<span class=\"empty\">none yet</span>") : out;
  };
  s += "<p class=\"note\" style=\"margin-top:14px\">Pareto front, perplexity against latency: " +
       front_list(d.front_latency) +
       ".<br/>Pareto front, perplexity against size: " + front_list(d.front_size) + ".</p>\n";
  return s + "</section>\n";
}

std::string facts(const ReportData& d) {
  std::string s = "<section id=\"facts\"><h2>Project, model and machine</h2>\n";
  for (const ProjectProblem& p : d.problems)
    s += "<div class=\"warn\"><strong>" + H(p.field) + "</strong>: " + H(p.message) + "</div>\n";
  s += "<div class=\"grid2\">\n<div><h3>Project</h3><table class=\"facts\">\n";
  const Project& p = d.project;
  auto path_or = [](const std::string& v, const char* none) {
    return v.empty() ? "<span class=\"empty\">" + std::string(none) + "</span>"
                     : "<code>" + H(v) + "</code>";
  };
  s += fact_row("Name", H(p.name));
  s += fact_row("Project file", path_or(d.project_file, "-"));
  s += fact_row("Calibration text", path_or(p.calibration_path, "none"));
  s += fact_row("Evaluation text", path_or(p.evaluation_path, "none"));
  s += fact_row("Evaluation", "window " + std::to_string(p.eval.window) + ", stride " +
                                  std::to_string(p.eval.stride) + ", " +
                                  (p.eval.max_tokens > 0
                                       ? "at most " + std::to_string(p.eval.max_tokens) + " tokens"
                                       : std::string("the whole text")));
  s += fact_row("Recipes", std::to_string(p.recipes.size()));
  s += fact_row("Run database",
                path_or(d.database_path, "-") +
                    (d.database_exists ? "" : " <span class=\"empty\">(not created yet)</span>"));
  s += "</table></div>\n<div><h3>Model</h3><table class=\"facts\">\n";
  const ReportModel& m = d.model;
  s += fact_row("Path", path_or(m.path, "none"));
  if (!m.loaded()) {
    s += fact_row("Status", "<span class=\"empty\">" + H(m.error) + "</span>");
  } else {
    s += fact_row("Format", H(m.format));
    s += fact_row("Architecture", m.architecture.empty() ? "<span class=\"empty\">not stated</span>"
                                                         : H(m.architecture));
    s += fact_row("Parameters", H(format_count(double(m.parameters))) + " (" +
                                    std::to_string(m.parameters) + ")");
    s += fact_row("Tensor bytes", H(format_bytes(double(m.bytes))));
    std::map<std::string, size_t> dtypes;
    for (const ReportTensor& t : m.tensors) ++dtypes[t.dtype];
    std::string dt;
    for (const auto& [name, n] : dtypes)
      dt += (dt.empty() ? "" : ", ") + H(name) + " \xC3\x97 " + std::to_string(n);
    s +=
        fact_row("Tensors", std::to_string(m.tensors.size()) + (dt.empty() ? "" : " (" + dt + ")"));
    s += fact_row("Fingerprint", "<code>" + H(m.fingerprint.substr(0, 16)) + "</code>");
  }
  s += "</table></div>\n<div><h3>Machine (this report)</h3><table class=\"facts\">\n";
  s += fact_row("Host", H(d.machine.host));
  s += fact_row("CPU", H(d.machine.cpu));
  s += fact_row("SIMD level", H(d.machine.simd));
  s += fact_row("Threads", std::to_string(d.machine.threads));
  s += fact_row("MCW version", H(d.machine.mcw_version));
  s += "</table></div>\n";
  // Latency is measured where each run ran: say where that was.
  std::vector<std::pair<std::string, std::string>> hosts;
  std::map<std::pair<std::string, std::string>, size_t> runs_on;
  for (const RunRecord& r : d.runs) {
    const auto key = std::make_pair(r.info.host, r.info.cpu);
    if (runs_on[key]++ == 0) hosts.push_back(key);
  }
  if (!hosts.empty()) {
    s += "<div><h3>Where the runs ran</h3><table class=\"facts\">\n";
    for (const auto& k : hosts)
      s += fact_row(k.first.empty() ? "unknown host" : k.first,
                    H(k.second) + " <span class=\"empty\">(" + std::to_string(runs_on[k]) +
                        (runs_on[k] == 1 ? " run" : " runs") + ")</span>");
    s += "</table></div>\n";
  }
  return s + "</div>\n</section>\n";
}

// Scale for sizes: the unit the largest size reads best in.
std::pair<double, const char*> size_unit(const ReportData& d) {
  double mx = 0;
  for (const RunRecord& r : d.runs)
    if (const auto v = r.metric("size_bytes")) mx = std::max(mx, *v);
  if (mx >= double(1ull << 30)) return {double(1ull << 30), "GiB"};
  if (mx >= double(1ull << 20)) return {double(1ull << 20), "MiB"};
  if (mx >= 1024) return {1024.0, "KiB"};
  return {1.0, "bytes"};
}

std::string trade_off_section(const ReportData& d, bool latency) {
  const std::string id = latency ? "accuracy-latency" : "accuracy-size";
  std::string s = "<section id=\"" + id + "\"><h2>Accuracy against " +
                  (latency ? "latency" : "size") + "</h2>\n";
  s += "<p class=\"note\">Lower is better on both axes. Filled points are on the Pareto front: "
       "no other run has both lower perplexity and " +
       std::string(latency ? "lower latency" : "a smaller size") +
       "; the dashed line is the front's edge. Point radius shows " +
       (latency ? "the size in bits per weight" : "the decode latency") + ".</p>\n";
  const auto [unit, unit_name] = size_unit(d);
  ScatterPlot p;
  p.title = latency ? "Perplexity vs decode latency" : "Perplexity vs model size";
  p.x_label = latency ? "decode latency (ms per token)" : std::string("size (") + unit_name + ")";
  p.y_label = "perplexity";
  p.size_label = latency ? "bits per weight" : "ms per token";
  const std::vector<size_t>& front = latency ? d.front_latency : d.front_size;
  std::vector<double> ys;
  size_t done = 0;
  for (const RunRecord& r : d.runs) done += r.info.status == RunStatus::Done;
  for (size_t i = 0; i < d.runs.size(); ++i) {
    const RunRecord& r = d.runs[i];
    const auto y = r.metric(kReportAccuracyMetric);
    const auto x = r.metric(latency ? kReportLatencyMetric : kReportSizeMetric);
    if (r.info.status != RunStatus::Done || !x || !y) continue;
    ScatterPoint q;
    q.x = latency ? *x : *x / unit;
    q.y = *y;
    const auto size = r.metric(latency ? "bits_per_weight" : kReportLatencyMetric);
    q.size = size ? *size : NAN;
    q.id = r.info.id;
    q.front = std::binary_search(front.begin(), front.end(), i);
    q.reference = r.info.recipe_name == "baseline";
    if (done <= 16 || q.front) q.label = r.info.recipe_name;
    q.tooltip = run_title(r) + "\nperplexity " + format_general(*y, 5) + "\nlatency " +
                metric_text(r, kReportLatencyMetric) + " ms/token\nsize " + size_text(r) + " (" +
                metric_text(r, "bits_per_weight") + " bits/weight)";
    ys.push_back(*y);
    p.points.push_back(std::move(q));
  }
  p.log_y = spans_decades(ys, 1.0);
  s += "<figure>" + scatter_svg(p) + "</figure>\n";
  if (latency) {  // figures a reviewer should not trust (project_runner.cpp: latency_busy)
    std::string busy;
    for (const RunRecord& r : d.runs)
      if (r.info.status == RunStatus::Done && r.metric("latency_busy").value_or(0) != 0)
        busy += (busy.empty() ? "" : ", ") + escape_html(run_title(r)) + " (" +
                format_general(100 * r.metric("latency_others_cpu").value_or(0), 2) + " %)";
    if (!busy.empty())
      s += "<p class=\"note\">Latency measured while other processes took a share of the CPUs, "
           "so slower or noisier than on a quiet machine: " + busy + ".</p>\n";
  }
  return s + "</section>\n";
}

std::string sensitivity_section(const ReportData& d) {
  const std::vector<ReportGrid> grids = report_sensitivity_grids(d);
  if (grids.empty()) return {};
  std::string s =
      "<section id=\"sensitivity\"><h2>Sensitivity</h2>\n<p class=\"note\">Each "
      "layer compressed alone at each setting; the value is the fidelity drop "
      "measured on calibration data (darker is more sensitive).</p>\n";
  for (const ReportGrid& g : grids) {
    Heatmap m;
    m.title = "Sensitivity: " + g.metric;
    m.value_label = g.metric;
    m.rows = g.rows, m.columns = g.columns, m.values = g.values;
    m.log_scale = spans_decades(g.values, 2.0);
    s += "<figure>" + heatmap_svg(m) + "</figure>\n";
  }
  return s + "</section>\n";
}

std::string layers_section(const ReportData& d) {
  const std::vector<size_t> runs = report_layer_runs(d, 3);
  if (runs.empty()) return {};
  const ReportGrid g = report_layer_grid(d, runs);
  BarChart c;
  c.title = "Per-layer relative error";
  c.value_label = "relative squared error";
  c.labels = g.rows;
  for (size_t k = 0; k < g.columns.size(); ++k) {
    BarSeries se;
    se.name = g.columns[k];
    for (size_t r = 0; r < g.rows.size(); ++r)
      se.values.push_back(g.values[r * g.columns.size() + k]);
    c.series.push_back(std::move(se));
  }
  c.log_scale = spans_decades(std::vector<double>(g.values), 2.0);
  return "<section id=\"layers\"><h2>Per-layer error</h2>\n<p class=\"note\">Relative squared "
         "error of each compressed layer's output on the calibration inputs, "
         "tr(\xCE\x94W\xC2\xB7X\xE1\xB5\x80X\xC2\xB7\xCE\x94W\xE1\xB5\x80) / "
         "tr(W\xC2\xB7X\xE1\xB5\x80X\xC2\xB7W\xE1\xB5\x80) (or "
         "\xE2\x80\x96\xCE\x94W\xE2\x80\x96\xC2\xB2 / \xE2\x80\x96W\xE2\x80\x96\xC2\xB2 "
         "without calibration), for the best runs: those on a Pareto front first, then by "
         "perplexity.</p>\n<figure>" +
         bar_chart_svg(c) + "</figure>\n</section>\n";
}

std::string runs_section(const ReportData& d) {
  std::string s = "<section id=\"runs\"><h2>Runs</h2>\n";
  if (d.runs.empty()) return s + "<p class=\"empty\">No runs recorded yet.</p>\n</section>\n";
  const auto& cols = report_run_columns();
  s += "<div class=\"scroll\"><table>\n<tr>";
  for (const RunColumn& c : cols)
    s += std::string("<th") + (c.numeric ? " class=\"num\"" : "") + ">" + H(c.header) + "</th>";
  s += "</tr>\n";
  for (size_t i = 0; i < d.runs.size(); ++i) {
    const RunRecord& r = d.runs[i];
    const bool front = d.on_front_latency(i) || d.on_front_size(i);
    s += std::string("<tr") + (front ? " class=\"front\"" : "") + ">";
    for (const RunColumn& c : cols) {
      const std::string v = c.cell(d, i);
      if (std::string(c.header) == "Status")
        s += "<td><span class=\"pill " + H(v) + "\">" + H(v) + "</span></td>";
      else
        s += std::string("<td") + (c.numeric ? " class=\"num\"" : "") + ">" + H(v) + "</td>";
    }
    s += "</tr>\n";
    if (!r.info.error.empty() && r.info.status != RunStatus::Done)
      s += "<tr class=\"err\"><td></td><td colspan=\"" + std::to_string(cols.size() - 1) + "\">" +
           H(r.info.error) + "</td></tr>\n";
  }
  s += "</table></div>\n";
  // Every metric, for the reviewer who wants the raw numbers.
  const std::vector<std::string> names = report_metric_names(d);
  if (!names.empty()) {
    s += "<details><summary>All recorded metrics</summary><div class=\"scroll\"><table>\n<tr><th>"
         "Run</th>";
    for (const auto& n : names) s += "<th class=\"num\">" + H(n) + "</th>";
    s += "</tr>\n";
    for (const RunRecord& r : d.runs) {
      s += "<tr><td>" + H(run_title(r)) + "</td>";
      for (const auto& n : names) {
        const auto v = r.metric(n);
        s += "<td class=\"num\">" + H(v ? format_general(*v, 6) : "-") + "</td>";
      }
      s += "</tr>\n";
    }
    s += "</table></div></details>\n";
  }
  return s + "</section>\n";
}

std::string recipes_section(const ReportData& d) {
  if (d.runs.empty()) return {};
  std::string s = "<section id=\"recipes\"><h2>Recipes</h2>\n";
  for (const std::vector<size_t>& g : report_recipe_groups(d)) {
    const RunInfo& first = d.runs[g.front()].info;
    std::string ids;
    for (size_t i : g) ids += (ids.empty() ? "" : ", ") + std::to_string(d.runs[i].info.id);
    s += "<h3>" + H(first.recipe_name) + " <span class=\"empty\">(run" +
         (g.size() > 1 ? "s " : " ") + ids + ")</span></h3>\n";
    if (first.recipe_text.empty())
      s += "<p class=\"empty\">" +
           std::string(first.recipe_name == "baseline" ? "The uncompressed model: no recipe."
                                                       : "No recipe text was recorded.") +
           "</p>\n";
    else
      s += "<pre>" + H(first.recipe_text) + "</pre>\n";
  }
  return s + "</section>\n";
}

std::string tensors_section(const ReportData& d) {
  if (!d.model.loaded()) return {};
  constexpr size_t kMaxRows = 5000;
  const auto& ts = d.model.tensors;
  std::string s = "<section id=\"tensors\"><h2>Tensors</h2>\n<details><summary>" +
                  std::to_string(ts.size()) + " tensors, " +
                  H(format_count(double(d.model.parameters))) +
                  " parameters</summary><div class=\"scroll\"><table>\n<tr><th>Name</th><th>"
                  "Type</th><th>Shape</th><th class=\"num\">Parameters</th><th class=\"num\">"
                  "Bytes</th></tr>\n";
  for (size_t i = 0; i < ts.size() && i < kMaxRows; ++i) {
    const ReportTensor& t = ts[i];
    std::string shape = "[";
    for (size_t k = 0; k < t.shape.size(); ++k)
      shape += (k ? ", " : "") + std::to_string(t.shape[k]);
    shape += "]";
    s += "<tr><td><code>" + H(t.name) + "</code></td><td>" + H(t.dtype) + "</td><td>" + shape +
         "</td><td class=\"num\">" + std::to_string(t.parameters) + "</td><td class=\"num\">" +
         H(format_bytes(double(t.bytes))) + "</td></tr>\n";
  }
  s += "</table></div>";
  if (ts.size() > kMaxRows)
    s += "<p class=\"note\">The first " + std::to_string(kMaxRows) + " of " +
         std::to_string(ts.size()) + " tensors.</p>";
  return s + "</details>\n</section>\n";
}

}  // namespace

std::string html_report(const ReportData& d) {
  const std::string sensitivity = sensitivity_section(d), layers = layers_section(d);
  const std::string recovery = recovery_html_section(d);
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
      "<meta name=\"generator\" content=\"MCW " +
      H(d.machine.mcw_version) + "\"/>\n<title>" + H("MCW report: " + d.project.name) +
      "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n";
  s += "<header class=\"top\"><div class=\"wrap\"><div class=\"kicker\">Model Compression "
       "Workbench \xC2\xB7 review report</div>\n<h1>" +
       H(d.project.name) + "</h1>\n";
  s += "<div class=\"meta\">Generated " + H(format_utc_time(d.generated_at)) + " on " +
       H(d.machine.host) + " \xC2\xB7 MCW " + H(d.machine.mcw_version) + " \xC2\xB7 " +
       std::to_string(d.runs.size()) + (d.runs.size() == 1 ? " run" : " runs") + "</div>\n";
  s += "<nav class=\"toc\"><a href=\"#summary\">Summary</a><a href=\"#facts\">Project and "
       "model</a>";
  if (!d.runs.empty())
    s += "<a href=\"#accuracy-latency\">Accuracy vs latency</a><a href=\"#accuracy-size\">"
         "Accuracy vs size</a>";
  if (!sensitivity.empty()) s += "<a href=\"#sensitivity\">Sensitivity</a>";
  if (!layers.empty()) s += "<a href=\"#layers\">Per-layer error</a>";
  if (!recovery.empty()) s += "<a href=\"#recovery\">Recovery</a>";
  s += "<a href=\"#runs\">Runs</a>";
  if (!d.runs.empty()) s += "<a href=\"#recipes\">Recipes</a>";
  if (d.model.loaded()) s += "<a href=\"#tensors\">Tensors</a>";
  s += "</nav></div></header>\n<main>\n";
  s += summary(d) + facts(d);
  if (!d.runs.empty()) s += trade_off_section(d, true) + trade_off_section(d, false);
  s += sensitivity + layers + recovery + runs_section(d) + recipes_section(d) + tensors_section(d);
  s += "<footer>Written by MCW " + H(d.machine.mcw_version) +
       ". Self-contained: no scripts and no external resources.</footer>\n</main>\n</body>\n"
       "</html>\n";
  return s;
}

}  // namespace mcw
