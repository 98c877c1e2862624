// Reports: the data they gather from a project, the SVG plots, and the HTML, Markdown and
// CSV writers, with hostile strings everywhere a model, a project or a recipe can put one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <locale>
#include <set>

#include "engine/core/error.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "engine/project/project.h"
#include "engine/report/csv_report.h"
#include "engine/report/html_report.h"
#include "engine/report/markdown_report.h"
#include "engine/report/report_data.h"
#include "engine/report/report_tables.h"
#include "engine/report/report_text.h"
#include "engine/report/report_writer.h"
#include "engine/report/svg_plot.h"
#include "engine/runs/fingerprint.h"
#include "engine/runs/run_pareto.h"
#include "temp_files.h"
#include "xml_check.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

const std::string kScript = "<script>alert(1)</script>";
const std::string kScriptEscaped = "&lt;script&gt;alert(1)&lt;/script&gt;";

// An independent RFC 4180 reader: fields separated by ',', records by CRLF (or LF),
// quoted fields may hold commas, CR, LF and doubled quotes.
std::vector<std::vector<std::string>> parse_csv(const std::string& s) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  size_t i = 0;
  bool quoted = false, any = false;
  while (i < s.size()) {
    const char c = s[i];
    if (quoted) {
      if (c == '"' && i + 1 < s.size() && s[i + 1] == '"')
        field += '"', i += 2;
      else if (c == '"')
        quoted = false, ++i;
      else
        field += c, ++i;
      continue;
    }
    if (c == '"') {
      EXPECT_TRUE(field.empty()) << "quote inside an unquoted field at " << i;
      quoted = true, any = true, ++i;
    } else if (c == ',') {
      row.push_back(field), field.clear(), any = true, ++i;
    } else if (c == '\r' || c == '\n') {
      row.push_back(field), field.clear();
      rows.push_back(row), row.clear();
      any = false;
      i += (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ? 2 : 1;
    } else {
      field += c, any = true, ++i;
    }
  }
  EXPECT_FALSE(quoted) << "unterminated quoted field";
  if (any || !field.empty()) row.push_back(field), rows.push_back(row);
  return rows;
}

// The SVG elements of a document, each as its own text.
std::vector<std::string> svgs_of(const std::string& doc) {
  std::vector<std::string> out;
  for (size_t at = 0; (at = doc.find("<svg", at)) != std::string::npos;) {
    const size_t end = doc.find("</svg>", at);
    if (end == std::string::npos) break;
    out.push_back(doc.substr(at, end + 6 - at));
    at = end;
  }
  return out;
}

// The data-id of every point drawn on the front, and of every point.
std::set<int64_t> point_ids(const std::string& svg, bool front_only) {
  const test::XmlCheck x = test::check_xml(svg);
  EXPECT_EQ(x.problem, "");
  std::set<int64_t> ids;
  for (const auto& e : x.elements) {
    const auto cls = e.attrs.find("class");
    if (e.name != "g" || cls == e.attrs.end() || cls->second.rfind("pt", 0) != 0) continue;
    if (front_only && cls->second.find("front") == std::string::npos) continue;
    ids.insert(std::stoll(e.attrs.at("data-id")));
  }
  return ids;
}

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = 0; (at = s.find(what, at)) != std::string::npos; at += what.size()) ++n;
  return n;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower((unsigned char)c));
  return s;
}

struct Fixture {
  fs::path dir;
  std::string project_file, db, fingerprint;
  std::vector<int64_t> ids;  // baseline, script, commas, w2, failed, nolat
};

const std::string kOddName = "w3, \"q\"\nx|y";
const std::string kRecipeText =
    "# <script>alert(1)</script> & 'single' \"double\"\nstages:\n  - algorithm: rtn\n"
    "    bits: 4   # ``` fence\n";

// A project with a tiny safetensors model (one tensor named like a script tag), an
// evaluation file, and a store holding runs with hostile names, recipes and layers.
Fixture make_fixture(bool with_runs = true) {
  Fixture f;
  f.dir = test::fresh_temp_dir();
  const std::string model = (f.dir / "model.safetensors").string();
  std::vector<float> w(12, 0.5f), b(3, 0.25f);
  write_safetensors(model, {Tensor::from_f32(w, {3, 4}, kScript),
                            Tensor::from_f32(b, {3}, "model.norm & \"bias\"")});
  test::write_bytes(f.dir / "eval.txt", "some text");
  Project p;
  p.name = "demo <&> \"proj\"";
  p.model_path = model;
  p.evaluation_path = (f.dir / "eval.txt").string();
  p.recipes = {{kScript, "", kRecipeText}};
  f.db = (f.dir / "runs.mcwdb").string();
  p.database_path = f.db;
  f.project_file = (f.dir / "p.mcwproj").string();
  save_project(p, f.project_file);
  f.fingerprint = model_fingerprint(open_model_file(model));
  if (!with_runs) return f;

  auto store = RunStore::open(f.db);
  auto add = [&](const std::string& name, const std::string& text, std::vector<Metric> metrics,
                 std::vector<LayerMetric> layers, RunStatus st, const std::string& error = {}) {
    RunInfo info;
    info.project = p.name;
    info.model_fingerprint = f.fingerprint;
    info.recipe_name = name;
    info.recipe_text = text;
    const int64_t id = store->create_run(info);
    store->add_metrics(id, metrics);
    store->add_layer_metrics(id, layers);
    store->set_status(id, st, error);
    f.ids.push_back(id);
  };
  using M = std::vector<Metric>;
  add("baseline", "",
      M{{"perplexity", 10},
        {"kl", 0},
        {"latency_ms_per_token", 5},
        {"size_bytes", 2000},
        {"bits_per_weight", 16}},
      {}, RunStatus::Done);
  add(kScript, kRecipeText,
      M{{"perplexity", 10.5},
        {"kl", 0.01},
        {"latency_ms_per_token", 2},
        {"size_bytes", 600},
        {"bits_per_weight", 4.5},
        {"top1", 0.97}},
      {{kScript, "relative_error", 0.0123},
       {"model.layers.0.mlp & \"up\"", "relative_error", 0.2},
       {kScript, "bits_per_weight", 4.5}},
      RunStatus::Done);
  add(kOddName, "stages: []\n",
      M{{"perplexity", 12},
        {"latency_ms_per_token", 2.5},
        {"size_bytes", 450},
        {"bits_per_weight", 3.5}},
      {{kScript, "relative_error", 0.05}}, RunStatus::Done);
  add("w2 & friends", "x: 'y'\n",
      M{{"perplexity", 400},
        {"latency_ms_per_token", 1.5},
        {"size_bytes", 300},
        {"bits_per_weight", 2.5},
        {"latency_busy", 1},  // measured while others took 37 % of the CPUs
        {"latency_others_cpu", 0.37},
        {"weird metric, \"quoted\"", 0.1 + 0.2}},
      {{kScript, "relative_error", 0.9}, {"model.layers.0.mlp & \"up\"", "relative_error", 1.7}},
      RunStatus::Done);
  add("failed one", "", {}, {}, RunStatus::Failed, "<b>boom</b> & \"x\"");
  add("nolat", "", M{{"perplexity", 11}, {"size_bytes", 900}}, {}, RunStatus::Done);
  store->put_sensitivities(f.fingerprint, {{kScript, "w4", "kl", 0.01},
                                           {kScript, "w2", "kl", 0.5},
                                           {"model.norm & \"bias\"", "w4", "kl", 0.002}});
  store->put_sensitivity("another model", {"elsewhere", "w4", "kl", 9});
  return f;
}

std::vector<int64_t> ids_of(const std::vector<RunRecord>& runs, const std::vector<size_t>& idx) {
  std::vector<int64_t> out;
  for (size_t i : idx) out.push_back(runs[i].info.id);
  return out;
}

}  // namespace

TEST(ReportText, EscapesHtmlAndRepairsText) {
  EXPECT_EQ(escape_html("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
  EXPECT_EQ(escape_html(kScript), kScriptEscaped);
  EXPECT_EQ(escape_html("caf\xC3\xA9 \xE2\x82\xAC"), "caf\xC3\xA9 \xE2\x82\xAC");  // kept
  EXPECT_EQ(escape_html("a\xFF"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");                                                  // not UTF-8
  EXPECT_EQ(escape_html("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong NUL
  EXPECT_EQ(escape_html(std::string("x\0y\x01\tz\n", 7)), "x\xEF\xBF\xBDy\xEF\xBF\xBD\tz\n");
  EXPECT_EQ(test::check_xml("<t>" + escape_html("<&>\"'\x02\xFE") + "</t>").problem, "");
}

TEST(ReportText, MarkdownCellsAndCsvFields) {
  EXPECT_EQ(escape_markdown_cell("a|b\nc"), "a\\|b<br>c");
  EXPECT_EQ(escape_markdown_cell("r1\r\nr2\rr3"), "r1<br>r2<br>r3");
  EXPECT_EQ(escape_markdown_cell(kScript), kScriptEscaped);
  EXPECT_EQ(escape_markdown_cell("*a* _b_ `c` [d] \\ &"),
            "\\*a\\* \\_b\\_ \\`c\\` \\[d\\] \\\\ &amp;");
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_field(" padded"), "\" padded\"");
  EXPECT_EQ(csv_field(""), "");
}

TEST(ReportText, NumbersIgnoreTheLocale) {
  // A locale with ',' as the decimal point and digit grouping: iostreams would use it.
  struct Comma : std::numpunct<char> {
    char do_decimal_point() const override { return ','; }
    char do_thousands_sep() const override { return '.'; }
    std::string do_grouping() const override { return "\3"; }
  };
  const std::locale old = std::locale::global(std::locale(std::locale::classic(), new Comma));
  const std::string fixed = format_fixed(1234567.5, 2), general = format_general(0.000123456, 3);
  const std::string exact = format_exact(0.1 + 0.2), bytes = format_bytes(1536);
  std::locale::global(old);
  EXPECT_EQ(fixed, "1234567.50");
  EXPECT_EQ(general, "0.000123");
  EXPECT_EQ(std::strtod(exact.c_str(), nullptr), 0.1 + 0.2);
  EXPECT_EQ(exact, "0.30000000000000004");
  EXPECT_EQ(bytes, "1.50 KiB");
  EXPECT_EQ(format_general(NAN), "nan");
  EXPECT_EQ(format_fixed(-INFINITY, 2), "-inf");
  EXPECT_EQ(format_count(6.74e9), "6.74 B");
  EXPECT_EQ(format_utc_time(0), "");
  EXPECT_EQ(format_utc_time(86400 * 365 + 3661), "1971-01-01 01:01:01 UTC");
  EXPECT_EQ(truncate_utf8("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 3), "\xC3\xA9\xC3\xA9\xE2\x80\xA6");
  EXPECT_EQ(truncate_utf8("abc", 3), "abc");
}

TEST(ReportText, NaturalOrder) {
  std::vector<std::string> v = {"w10", "w2", "layer.10.q", "layer.2.q", "w3", "a"};
  std::sort(v.begin(), v.end(), natural_less);
  EXPECT_EQ(v, (std::vector<std::string>{"a", "layer.2.q", "layer.10.q", "w2", "w3", "w10"}));
  EXPECT_FALSE(natural_less("x", "x"));
  EXPECT_NE(natural_less("01", "1"), natural_less("1", "01"));  // strict, yet total
}

TEST(XmlCheckTool, RejectsMalformedMarkup) {
  EXPECT_EQ(test::check_xml("<a x=\"1\"><b/>t &amp; &#39; &#x27;</a>").problem, "");
  EXPECT_NE(test::check_xml("<a><b></a></b>").problem, "");
  EXPECT_NE(test::check_xml("<a>").problem, "");
  EXPECT_NE(test::check_xml("<a x=1></a>").problem, "");
  EXPECT_NE(test::check_xml("<a x=\"1\" x=\"2\"></a>").problem, "");
  EXPECT_NE(test::check_xml("<a>x & y</a>").problem, "");
  EXPECT_NE(test::check_xml("<a title=\"<\"></a>").problem, "");
  EXPECT_NE(test::check_xml("<a>&nbsp;</a>").problem, "");
}

TEST(SvgPlot, NiceTicksAreRoundAndCover) {
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{
           {0, 1}, {0.013, 0.91}, {-3.2, 47.9}, {1e6, 3.3e6}, {99.5, 100.5}}) {
    const std::vector<double> t = nice_ticks(lo, hi, 6);
    ASSERT_GE(t.size(), 2u) << lo << " " << hi;
    EXPECT_LE(t.size(), 13u);
    const double step = t[1] - t[0];
    const double mag = std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    const double m = step / mag;
    EXPECT_TRUE(std::fabs(m - 1) < 1e-6 || std::fabs(m - 2) < 1e-6 || std::fabs(m - 5) < 1e-6)
        << step;
    for (size_t i = 0; i < t.size(); ++i) {
      EXPECT_GE(t[i], lo - 1e-9 * std::fabs(hi));
      EXPECT_LE(t[i], hi + 1e-9 * std::fabs(hi));
      if (i) {
        EXPECT_NEAR(t[i] - t[i - 1], step, step * 1e-6);
      }
      EXPECT_NEAR(std::round(t[i] / step) * step, t[i], step * 1e-6);
    }
    EXPECT_LT(t.front() - lo, step * (1 + 1e-9));  // no gap wider than a step at either end
    EXPECT_LT(hi - t.back(), step * (1 + 1e-9));
  }
  EXPECT_EQ(log_ticks(1, 1e4), (std::vector<double>{1, 10, 100, 1000, 10000}));
  EXPECT_EQ(log_ticks(3, 60), (std::vector<double>{5, 10, 20, 50}));
  EXPECT_TRUE(spans_decades({10, 400}, 1));
  EXPECT_FALSE(spans_decades({10, 90}, 1));
  EXPECT_FALSE(spans_decades({-1, 400}, 1));
}

TEST(SvgPlot, ScatterDrawsEveryPointAndTheFrontAsAStaircase) {
  ScatterPlot p;
  p.title = kScript;
  p.x_label = "x & y";
  p.y_label = "\"ppl\"";
  p.log_y = true;
  p.standalone = true;
  const double xs[] = {1, 2, 3, 4, 2.5}, ys[] = {100, 20, 10, 5, 50};
  for (int i = 0; i < 5; ++i) {
    ScatterPoint q;
    q.x = xs[i], q.y = ys[i], q.size = i, q.id = 10 + i, q.front = i < 4;
    q.label = i == 0 ? kScript : "p" + std::to_string(i);
    p.points.push_back(q);
  }
  ScatterPoint bad;
  bad.x = 1, bad.y = -1, bad.id = 99;  // not drawable on a log axis
  p.points.push_back(bad);
  const std::string svg = scatter_svg(p);
  const test::XmlCheck x = test::check_xml(svg);
  ASSERT_EQ(x.problem, "") << svg;
  EXPECT_EQ(svg.find("<script"), std::string::npos);
  EXPECT_NE(svg.find(kScriptEscaped), std::string::npos);
  EXPECT_EQ(point_ids(svg, false), (std::set<int64_t>{10, 11, 12, 13, 14}));
  EXPECT_EQ(point_ids(svg, true), (std::set<int64_t>{10, 11, 12, 13}));
  // The step line: from the leftmost front point, one H and one V per following point,
  // each H going right and each V going down the screen (lower perplexity).
  std::string d;
  for (const auto& e : x.elements)
    if (e.attrs.count("class") && e.attrs.at("class") == "front-line") d = e.attrs.at("d");
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(count_of(d, "H"), 3u);
  EXPECT_EQ(count_of(d, "V"), 3u);
  std::vector<double> hs, vs;
  for (size_t i = 0; i < d.size(); ++i)
    if (d[i] == 'H' || d[i] == 'V')
      (d[i] == 'H' ? hs : vs).push_back(std::strtod(&d[i + 1], nullptr));
  EXPECT_TRUE(std::is_sorted(hs.begin(), hs.end()));
  EXPECT_TRUE(std::is_sorted(vs.begin(), vs.end()));  // SVG y grows downwards
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
}

TEST(SvgPlot, HeatmapHasATitledCellPerValue) {
  Heatmap m;
  m.title = "sens";
  m.rows = {kScript, "b & c"};
  m.columns = {"w2", "w'4"};
  m.values = {0.5, NAN, 0.001, 2};
  m.log_scale = true;
  const std::string svg = heatmap_svg(m);
  const test::XmlCheck x = test::check_xml(svg);
  ASSERT_EQ(x.problem, "") << svg;
  EXPECT_EQ(svg.find("<script"), std::string::npos);
  size_t cells = 0;
  for (const auto& e : x.elements)
    cells += e.name == "g" && e.attrs.count("class") && e.attrs.at("class") == "cell";
  EXPECT_EQ(cells, 4u);
  EXPECT_NE(svg.find("b &amp; c \xC2\xB7 w&#39;4: 2</title>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(kScriptEscaped + " \xC2\xB7 w&#39;4: not measured</title>"),
            std::string::npos);
  m.values.pop_back();
  EXPECT_THROW(heatmap_svg(m), std::invalid_argument);
}

TEST(SvgPlot, BarChartBarLengthsAreProportional) {
  BarChart c;
  c.title = "err";
  c.labels = {"a", kScript, "c"};
  c.series = {{"run 1", {0.1, 0.4, NAN}}};
  const std::string svg = bar_chart_svg(c);
  const test::XmlCheck x = test::check_xml(svg);
  ASSERT_EQ(x.problem, "") << svg;
  std::vector<double> widths;
  for (const auto& e : x.elements)
    if (e.name == "rect" && e.attrs.count("fill") && e.attrs.at("fill") == "#2563eb")
      widths.push_back(std::stod(e.attrs.at("width")));
  ASSERT_EQ(widths.size(), 2u);  // NaN draws no bar
  EXPECT_NEAR(widths[1] / widths[0], 4.0, 0.05);
  EXPECT_EQ(svg.find("<script"), std::string::npos);
}

TEST(ReportData, GathersProjectModelRunsSensitivityAndFronts) {
  const Fixture f = make_fixture();
  const ReportData d = load_report_data(f.project_file);
  EXPECT_EQ(d.project.name, "demo <&> \"proj\"");
  ASSERT_TRUE(d.model.loaded()) << d.model.error;
  EXPECT_EQ(d.model.format, "safetensors");
  EXPECT_EQ(d.model.parameters, 15u);
  ASSERT_EQ(d.model.tensors.size(), 2u);
  EXPECT_EQ(d.model.tensors[0].name, kScript);
  EXPECT_EQ(d.model.tensors[0].shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(d.model.tensors[0].dtype, "F32");
  EXPECT_EQ(d.model.fingerprint, f.fingerprint);
  EXPECT_FALSE(d.machine.host.empty());
  EXPECT_GE(d.machine.threads, 1);
  ASSERT_EQ(d.runs.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(d.runs[i].info.id, f.ids[i]);  // oldest first
  EXPECT_EQ(d.runs[1].layers.size(), 3u);
  EXPECT_EQ(d.sensitivity.size(), 3u);  // only this model's
  // The fronts are run_pareto's over the done runs, worked out by hand too: run 2 beats
  // run 3 on perplexity and latency; runs 3 and "nolat" are beaten on size by run 2 only
  // where perplexity is also lower.
  std::vector<RunRecord> done;
  for (const RunRecord& r : d.runs)
    if (r.info.status == RunStatus::Done) done.push_back(r);
  auto front_ids = [&](const char* metric) {
    return ids_of(done, pareto_runs(done, {"perplexity", metric}));
  };
  EXPECT_EQ(ids_of(d.runs, d.front_latency), front_ids("latency_ms_per_token"));
  EXPECT_EQ(ids_of(d.runs, d.front_size), front_ids("size_bytes"));
  EXPECT_EQ(ids_of(d.runs, d.front_latency), (std::vector<int64_t>{f.ids[0], f.ids[1], f.ids[3]}));
  EXPECT_EQ(ids_of(d.runs, d.front_size),
            (std::vector<int64_t>{f.ids[0], f.ids[1], f.ids[2], f.ids[3]}));
  // Per-layer bars: front runs first, by perplexity.
  EXPECT_EQ(report_layer_runs(d, 2), (std::vector<size_t>{1, 2}));
  const ReportGrid g = report_layer_grid(d, {1, 3});
  EXPECT_EQ(g.rows, (std::vector<std::string>{kScript, "model.layers.0.mlp & \"up\""}));
  EXPECT_EQ(g.values, (std::vector<double>{0.0123, 0.9, 0.2, 1.7}));
  const std::vector<ReportGrid> sens = report_sensitivity_grids(d);
  ASSERT_EQ(sens.size(), 1u);
  EXPECT_EQ(sens[0].rows,
            (std::vector<std::string>{kScript, "model.norm & \"bias\""}));  // model order
  EXPECT_EQ(sens[0].columns, (std::vector<std::string>{"w2", "w4"}));
  EXPECT_EQ(sens[0].values[0], 0.5);
  EXPECT_TRUE(std::isnan(sens[0].values[2]));
}

TEST(ReportData, NoStoreAndNoModelStillReport) {
  Fixture f = make_fixture(false);
  fs::remove(f.dir / "model.safetensors");
  const ReportData d = load_report_data(f.project_file);
  EXPECT_FALSE(d.database_exists);
  EXPECT_FALSE(fs::exists(f.db)) << "a report must not create the run database";
  EXPECT_TRUE(d.runs.empty());
  EXPECT_FALSE(d.model.loaded());
  EXPECT_NE(d.model.error.find("model.safetensors"), std::string::npos) << d.model.error;
  ASSERT_FALSE(d.problems.empty());
  EXPECT_EQ(d.problems[0].field, "model");
  const std::string html = html_report(d);
  EXPECT_EQ(test::check_xml(html).problem, "");
  EXPECT_NE(html.find("No runs recorded yet"), std::string::npos);
  EXPECT_NE(markdown_report(d).find("No runs recorded yet"), std::string::npos);
  const auto rows = parse_csv(csv_report(d).runs);
  ASSERT_EQ(rows.size(), 1u);  // the header only
  EXPECT_EQ(rows[0][0], "run_id");
  // An empty store reads the same as none.
  RunStore::open(f.db);
  EXPECT_TRUE(load_report_data(f.project_file).runs.empty());
}

TEST(HtmlReport, EscapesEverythingAndIsSelfContainedAndWellFormed) {
  const Fixture f = make_fixture();
  const ReportData d = load_report_data(f.project_file);
  const std::string html = html_report(d);
  const std::string low = lower(html);
  EXPECT_EQ(low.find("<script"), std::string::npos);
  EXPECT_EQ(low.find("<b>"), std::string::npos);
  EXPECT_GE(count_of(html, kScriptEscaped), 5u);  // tensor, recipe, layers, sensitivity, runs
  EXPECT_NE(html.find("&lt;b&gt;boom&lt;/b&gt; &amp; &quot;x&quot;"), std::string::npos);
  EXPECT_NE(html.find("demo &lt;&amp;&gt; &quot;proj&quot;"), std::string::npos);
  EXPECT_NE(html.find("&#39;single&#39; &quot;double&quot;"), std::string::npos);  // in <pre>
  EXPECT_NE(html.find("model.norm &amp; &quot;bias&quot;"), std::string::npos);
  for (const char* external : {"http:", "https:", " src=", "<link", "url(", "@import", "<iframe",
                               "<object", "<embed", "<img"})
    EXPECT_EQ(low.find(external), std::string::npos) << external;
  for (const char* section :
       {"id=\"summary\"", "id=\"facts\"", "id=\"accuracy-latency\"", "id=\"accuracy-size\"",
        "id=\"sensitivity\"", "id=\"layers\"", "id=\"runs\"", "id=\"recipes\"", "id=\"tensors\""})
    EXPECT_NE(html.find(section), std::string::npos) << section;

  // The whole page is well-formed XML, and so is every SVG on its own.
  const test::XmlCheck x = test::check_xml(html);
  ASSERT_EQ(x.problem, "");
  const std::vector<std::string> svgs = svgs_of(html);
  ASSERT_EQ(svgs.size(), 4u);  // latency, size, sensitivity, per-layer
  for (const std::string& svg : svgs) EXPECT_EQ(test::check_xml(svg).problem, "") << svg;

  // The plotted fronts are exactly run_pareto's; every done run with both metrics is drawn.
  std::vector<RunRecord> done;
  for (const RunRecord& r : d.runs)
    if (r.info.status == RunStatus::Done) done.push_back(r);
  auto as_set = [](std::vector<int64_t> v) { return std::set<int64_t>(v.begin(), v.end()); };
  EXPECT_EQ(point_ids(svgs[0], true),
            as_set(ids_of(done, pareto_runs(done, {"perplexity", "latency_ms_per_token"}))));
  EXPECT_EQ(point_ids(svgs[1], true),
            as_set(ids_of(done, pareto_runs(done, {"perplexity", "size_bytes"}))));
  EXPECT_EQ(point_ids(svgs[0], false), (std::set<int64_t>{f.ids[0], f.ids[1], f.ids[2], f.ids[3]}));
  EXPECT_EQ(point_ids(svgs[1], false).size(), 5u);            // "nolat" has a size
  EXPECT_NE(svgs[0].find("(log scale)"), std::string::npos);  // perplexity 10 .. 400

  // A latency measured on a busy machine is named under the latency plot, and only it.
  const size_t busy = html.find("Latency measured while other processes");
  ASSERT_NE(busy, std::string::npos);
  const std::string note = html.substr(busy, html.find("</p>", busy) - busy);
  EXPECT_NE(note.find(escape_html(run_title(d.runs[3])) + " (37 %)"), std::string::npos) << note;
  for (size_t i : {0, 1, 2}) EXPECT_EQ(note.find(escape_html(run_title(d.runs[i]))), std::string::npos);

  // The runs table has a row per run, and the failed run's error under it.
  EXPECT_EQ(count_of(html, "<tr class=\"err\">"), 1u);
  for (const RunRecord& r : d.runs)
    EXPECT_NE(html.find("<td>" + escape_html(run_title(r)) + "</td>"), std::string::npos);
}

TEST(MarkdownReport, TablesKeepTheirColumnsAndEscapeCells) {
  const Fixture f = make_fixture();
  const ReportData d = load_report_data(f.project_file);
  const std::string md = markdown_report(d);
  // Outside code fences (where text is shown as is, never as markup) nothing is raw.
  std::string outside;
  {
    bool fenced = false;
    for (size_t pos = 0; pos < md.size();) {
      const size_t nl = std::min(md.find('\n', pos), md.size());
      const std::string line = md.substr(pos, nl - pos);
      if (line.rfind("```", 0) == 0)
        fenced = !fenced;
      else if (!fenced)
        outside += line + "\n";
      pos = nl + 1;
    }
  }
  EXPECT_EQ(lower(outside).find("<script"), std::string::npos);
  EXPECT_EQ(outside.find("<b>"), std::string::npos);
  EXPECT_GE(count_of(outside, kScriptEscaped), 4u);
  EXPECT_NE(md.find("w3, \"q\"<br>x\\|y"), std::string::npos);
  // Every table row has as many unescaped '|' as its header row.
  size_t want = 0, tables = 0;
  bool in_fence = false;
  size_t pos = 0;
  while (pos < md.size()) {
    const size_t nl = md.find('\n', pos);
    const std::string line = md.substr(pos, nl - pos);
    pos = nl == std::string::npos ? md.size() : nl + 1;
    if (line.rfind("```", 0) == 0) in_fence = !in_fence;
    if (in_fence || line.empty() || line[0] != '|') {
      want = 0;
      continue;
    }
    size_t bars = 0;
    for (size_t i = 0; i < line.size(); ++i)
      if (line[i] == '\\')
        ++i;
      else if (line[i] == '|')
        ++bars;
    if (want == 0) want = bars, ++tables;
    EXPECT_EQ(bars, want) << line;
  }
  EXPECT_GE(tables, 5u);  // facts, runs, sensitivity, per-layer, tensors
  // The recipe holds a ``` run, so its fence is longer.
  EXPECT_NE(md.find("````yaml\n" + kRecipeText + "````\n"), std::string::npos);
}

TEST(CsvReport, RoundTripsThroughAnIndependentParser) {
  const Fixture f = make_fixture();
  const ReportData d = load_report_data(f.project_file);
  const CsvReport c = csv_report(d);
  const auto rows = parse_csv(c.runs);
  ASSERT_EQ(rows.size(), 1 + d.runs.size());
  const std::vector<std::string>& head = rows[0];
  for (const auto& r : rows) EXPECT_EQ(r.size(), head.size());
  auto col = [&](const std::string& name) {
    return size_t(std::find(head.begin(), head.end(), name) - head.begin());
  };
  ASSERT_LT(col("weird metric, \"quoted\""), head.size());
  for (size_t i = 0; i < d.runs.size(); ++i) {
    const RunRecord& r = d.runs[i];
    const auto& row = rows[i + 1];
    EXPECT_EQ(row[col("run_id")], std::to_string(r.info.id));
    EXPECT_EQ(row[col("recipe")], r.info.recipe_name);
    EXPECT_EQ(row[col("project")], "demo <&> \"proj\"");
    EXPECT_EQ(row[col("status")], run_status_name(r.info.status));
    EXPECT_EQ(row[col("error")], r.info.error);
    EXPECT_EQ(row[col("pareto_latency")], d.on_front_latency(i) ? "1" : "0");
    for (size_t k = 14; k < head.size(); ++k) {
      const auto v = r.metric(head[k]);
      if (!v) {
        EXPECT_EQ(row[k], "");
        continue;
      }
      EXPECT_EQ(std::strtod(row[k].c_str(), nullptr), *v) << head[k];  // bit for bit
    }
  }
  EXPECT_EQ(rows[3][col("recipe")], kOddName);
  EXPECT_EQ(rows[4][col("weird metric, \"quoted\"")], "0.30000000000000004");

  const auto layers = parse_csv(c.layers);
  size_t n = 0;
  for (const RunRecord& r : d.runs)
    for (const LayerMetric& m : r.layers) {
      ++n;
      ASSERT_LT(n, layers.size());
      EXPECT_EQ(layers[n], (std::vector<std::string>{std::to_string(r.info.id), r.info.recipe_name,
                                                     m.layer, m.name, format_exact(m.value)}));
    }
  EXPECT_EQ(layers.size(), n + 1);
  const auto sens = parse_csv(c.sensitivity);
  ASSERT_EQ(sens.size(), 4u);
  EXPECT_EQ(sens[1][0], f.fingerprint);
}

TEST(ReportWriter, PicksTheFormatFromTheExtensionAndWritesAtomically) {
  const Fixture f = make_fixture();
  const ReportData d = load_report_data(f.project_file);
  const std::string html = (f.dir / "r.HTML").string(), md = (f.dir / "r.md").string();
  EXPECT_EQ(write_report(d, html), std::vector<std::string>{html});
  EXPECT_EQ(test::read_bytes(html), html_report(d));
  write_report(d, md);
  EXPECT_EQ(test::read_bytes(md), markdown_report(d));
  const std::string csv = (f.dir / "r.csv").string();
  const auto files = write_report(d, csv);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[1], (f.dir / "r-layers.csv").string());
  EXPECT_EQ(test::read_bytes(files[2]), csv_report(d).sensitivity);
  for (const char* bad : {"r.pdf", "r", "r.html.txt"}) {
    const std::string path = (f.dir / bad).string();
    try {
      write_report(d, path);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos);
      EXPECT_EQ(what.rfind(path, 0), 0u) << what;
    }
    EXPECT_FALSE(fs::exists(path));
  }
  // Nothing but the reports was added: no temporaries left beside them.
  const std::set<std::string> expected = {
      "model.safetensors", "eval.txt",         "p.mcwproj", "r.HTML", "r.md", "r.csv",
      "r-layers.csv",      "r-sensitivity.csv"};
  for (const auto& e : fs::directory_iterator(f.dir)) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(expected.count(name) || name.rfind("runs.mcwdb", 0) == 0) << name;
  }
}

// A run that recorded a recovery curve gets the recovery section: its figures before and
// after in a table, and a point per held-out evaluation (tagged with the run's id) in a
// well-formed SVG; a report without such a run has no section.
TEST(HtmlReport, RecoveredRunsGetTheirCurveAndFigures) {
  const Fixture f = make_fixture();
  EXPECT_EQ(html_report(load_report_data(f.project_file)).find("id=\"recovery\""), std::string::npos);
  {
    auto store = RunStore::open(f.db);
    RunInfo info;
    info.project = load_project(f.project_file).name;
    info.model_fingerprint = f.fingerprint;
    info.recipe_name = "w3 & lora";
    const int64_t id = store->create_run(info);
    store->add_metrics(id, {{"perplexity", 10.2}, {"kl", 0.004}, {"perplexity_before_recovery", 10.9},
                            {"kl_before_recovery", 0.0321}, {"recovery_steps", 40}, {"recovery_seconds", 12.5},
                            {"recovery_recode_loss_max", 0.75}});
    store->add_curve(id, {{"eval_kl", 0, 0.03}, {"loss", 1, 0.5}, {"eval_kl", 20, 0.01}, {"eval_kl", 40, 0.005}});
    store->set_status(id, RunStatus::Done);
  }
  const std::string html = html_report(load_report_data(f.project_file));
  const size_t at = html.find("<section id=\"recovery\">");
  ASSERT_NE(at, std::string::npos);
  const std::string sec = html.substr(at, html.find("</section>", at) - at);
  for (const char* text : {"w3 &amp; lora", ">10.9<", ">10.2<", ">0.0321<", ">0.004<", ">40<", ">0.75<"})
    EXPECT_NE(sec.find(text), std::string::npos) << text;
  const std::vector<std::string> svgs = svgs_of(sec);
  ASSERT_EQ(svgs.size(), 1u);
  EXPECT_EQ(test::check_xml(svgs[0]).problem, "");
  EXPECT_EQ(count_of(svgs[0], "<title>run "), 3u);  // the three evaluations, not the loss
  EXPECT_EQ(svgs[0].find("Pareto front"), std::string::npos);
  EXPECT_EQ(test::check_xml(html).problem, "");
}
