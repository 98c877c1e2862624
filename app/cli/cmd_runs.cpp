// mcw runs: what the run database holds: a list with the Pareto front marked, one run in
// full, or two runs side by side.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "engine/core/error.h"
#include "engine/project/project.h"
#include "engine/runs/run_pareto.h"
#include "engine/runs/run_store.h"

namespace mcw::cli {

const char* const kRunsUsage =
    "usage: mcw runs list <project|db> [--status S] [--json]\n"
    "       mcw runs show <project|db> ID [--json]\n"
    "       mcw runs compare <project|db> A B [--json]\n\n"
    "Reads a run database: given a project file (*.mcwproj), its database and only its\n"
    "runs; given a database file, every run in it.\n"
    "  list     one line per run, newest first; '*' marks the Pareto front over\n"
    "           perplexity, latency and size (no other run is better in all three)\n"
    "  show     every field and metric of run ID, its per-layer metrics and recipe\n"
    "  compare  the metrics of runs A and B with B - A, and their per-layer metrics\n";

namespace {

struct Opened {
  std::unique_ptr<RunStore> store;
  RunFilter filter;
};

Opened open_store(const std::string& target) {
  Opened o;
  if (target.size() > 8 && target.compare(target.size() - 8, 8, ".mcwproj") == 0) {
    const Project p = load_project(target);
    o.store = RunStore::open_existing(
        p.database_path.empty() ? default_database_path(target, p.name) : p.database_path);
    o.filter.project = p.name;
  } else {
    o.store = RunStore::open_existing(target);
  }
  return o;
}

RunRecord get(RunStore& store, int64_t id) {
  auto r = store.get_run(id);
  if (!r) throw Error(store.path(), "no run with id " + std::to_string(id));
  return *r;
}

std::string date(double unix_seconds) {
  if (unix_seconds <= 0) return "-";
  const std::time_t t = std::time_t(unix_seconds);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string metric_or_dash(const RunRecord& r, const char* name) {
  const auto v = r.metric(name);
  return v ? short_float(*v) : "-";
}

nlohmann::ordered_json to_json(const RunRecord& r) {
  const RunInfo& i = r.info;
  nlohmann::ordered_json j = {{"id", i.id},
                              {"uuid", i.uuid},
                              {"project", i.project},
                              {"recipe", i.recipe_name},
                              {"status", run_status_name(i.status)},
                              {"started_at", i.started_at},
                              {"ended_at", i.ended_at},
                              {"model_fingerprint", i.model_fingerprint},
                              {"host", i.host},
                              {"cpu", i.cpu},
                              {"mcw_version", i.mcw_version},
                              {"error", i.error},
                              {"notes", i.notes}};
  auto& m = j["metrics"] = nlohmann::ordered_json::object();
  for (const Metric& x : r.metrics) m[x.name] = x.value;
  return j;
}

int list(RunStore& store, RunFilter filter, const Args& args) {
  if (const auto s = args.value("status")) {
    filter.status = run_status_from_name(*s);
    if (!filter.status) throw UsageError{"unknown status '" + *s + "'"};
  }
  const std::vector<RunRecord> runs = store.load_runs_with_metrics(filter);
  std::vector<bool> front(runs.size(), false);
  for (size_t i : pareto_runs(runs, {"perplexity", "latency_ms_per_token", "size_bytes"}))
    front[i] = runs[i].info.status == RunStatus::Done;
  if (args.flag("json")) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (size_t i = 0; i < runs.size(); ++i) {
      auto j = to_json(runs[i]);
      j["pareto"] = bool(front[i]);
      out.push_back(std::move(j));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%5s  %-24s %-11s %10s %10s %7s %11s  %-19s\n", "id", "recipe", "status",
              "perplexity", "KL", "bits/w", "ms/token", "started");
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = runs[i];
    std::printf("%5lld%s %-24s %-11s %10s %10s %7s %11s  %-19s\n", (long long)r.info.id,
                front[i] ? "*" : " ", r.info.recipe_name.c_str(), run_status_name(r.info.status),
                metric_or_dash(r, "perplexity").c_str(), metric_or_dash(r, "kl").c_str(),
                metric_or_dash(r, "bits_per_weight").c_str(),
                metric_or_dash(r, "latency_ms_per_token").c_str(), date(r.info.started_at).c_str());
  }
  if (runs.empty()) std::printf("(no runs)\n");
  return 0;
}

// Per-layer metrics as rows of layers (in recorded order) and one column per metric name.
struct LayerTable {
  std::vector<std::string> layers, names;
  std::map<std::pair<std::string, std::string>, double> value;
  void add(const std::vector<LayerMetric>& ms) {
    for (const LayerMetric& m : ms) {
      if (std::find(layers.begin(), layers.end(), m.layer) == layers.end())
        layers.push_back(m.layer);
      if (std::find(names.begin(), names.end(), m.name) == names.end()) names.push_back(m.name);
    }
  }
  static std::string cell(const std::vector<LayerMetric>& ms, const std::string& layer,
                          const std::string& name) {
    for (const LayerMetric& m : ms)
      if (m.layer == layer && m.name == name) return short_float(m.value);
    return "-";
  }
  size_t width() const {
    size_t w = 5;
    for (const auto& l : layers) w = std::max(w, l.size());
    return w;
  }
};

// A run's curves as a table: a row per step, a column per series (blank where a series has
// no value at that step).
void print_curve(const std::vector<CurvePoint>& curve) {
  std::vector<std::string> series;
  std::map<int64_t, std::map<std::string, double>> rows;
  for (const CurvePoint& p : curve) {
    if (std::find(series.begin(), series.end(), p.series) == series.end()) series.push_back(p.series);
    rows[p.step][p.series] = p.value;
  }
  std::printf("\ncurve\n%6s", "step");
  for (const std::string& s : series) std::printf(" %12s", s.c_str());
  std::printf("\n");
  for (const auto& [step, values] : rows) {
    std::printf("%6lld", (long long)step);
    for (const std::string& s : series) {
      const auto it = values.find(s);
      std::printf(" %12s", it == values.end() ? "" : short_float(it->second).c_str());
    }
    std::printf("\n");
  }
}

int show(const RunRecord& r, const Args& args) {
  if (args.flag("json")) {
    auto j = to_json(r);
    j["recipe_text"] = r.info.recipe_text;
    auto& layers = j["layers"] = nlohmann::ordered_json::array();
    for (const LayerMetric& m : r.layers)
      layers.push_back({{"layer", m.layer}, {"name", m.name}, {"value", m.value}});
    auto& arts = j["artifacts"] = nlohmann::ordered_json::array();
    for (const Artifact& a : r.artifacts)
      arts.push_back(
          {{"kind", a.kind}, {"path", a.path}, {"sha256", a.sha256}, {"bytes", a.bytes}});
    if (!r.curve.empty()) {
      auto& curve = j["curve"] = nlohmann::ordered_json::array();
      for (const CurvePoint& p : r.curve)
        curve.push_back({{"series", p.series}, {"step", p.step}, {"value", p.value}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  const RunInfo& i = r.info;
  std::printf("run           %lld (%s)\nproject       %s\nrecipe        %s\nstatus        %s\n",
              (long long)i.id, i.uuid.c_str(), i.project.c_str(), i.recipe_name.c_str(),
              run_status_name(i.status));
  std::printf("started       %s\nended         %s\n", date(i.started_at).c_str(),
              date(i.ended_at).c_str());
  if (i.started_at > 0 && i.ended_at >= i.started_at)
    std::printf("took          %s\n", human_duration(i.ended_at - i.started_at).c_str());
  std::printf("host          %s (pid %lld), %s\nmcw           %s\nmodel         %.16s\n",
              i.host.c_str(), (long long)i.pid, i.cpu.c_str(), i.mcw_version.c_str(),
              i.model_fingerprint.c_str());
  if (!i.error.empty()) std::printf("error         %s\n", i.error.c_str());
  if (!i.notes.empty()) std::printf("notes         %s\n", i.notes.c_str());
  std::printf("\nmetrics\n");
  for (const Metric& m : r.metrics)
    std::printf("  %-26s %s\n", m.name.c_str(), short_float(m.value).c_str());
  for (const Artifact& a : r.artifacts)
    std::printf("artifact      %s %s (%s, sha256 %s)\n", a.kind.c_str(), a.path.c_str(),
                human_bytes(a.bytes).c_str(), a.sha256.c_str());
  if (!r.layers.empty()) {
    LayerTable t;
    t.add(r.layers);
    const int w = int(t.width());
    std::printf("\n%-*s", w, "layer");
    for (const auto& n : t.names) std::printf(" %16s", n.c_str());
    std::printf("\n");
    for (const auto& l : t.layers) {
      std::printf("%-*s", w, l.c_str());
      for (const auto& n : t.names) std::printf(" %16s", LayerTable::cell(r.layers, l, n).c_str());
      std::printf("\n");
    }
  }
  if (!r.curve.empty()) print_curve(r.curve);
  if (!i.recipe_text.empty())
    std::printf("\nrecipe\n%s%s", i.recipe_text.c_str(), i.recipe_text.back() == '\n' ? "" : "\n");
  return 0;
}

int compare(const RunRecord& a, const RunRecord& b, const Args& args) {
  std::vector<std::string> names;
  for (const auto* r : {&a, &b})
    for (const Metric& m : r->metrics)
      if (std::find(names.begin(), names.end(), m.name) == names.end()) names.push_back(m.name);
  if (args.flag("json")) {
    nlohmann::ordered_json j = {{"a", to_json(a)}, {"b", to_json(b)}};
    auto& d = j["delta"] = nlohmann::ordered_json::object();
    for (const auto& n : names)
      if (a.metric(n) && b.metric(n)) d[n] = *b.metric(n) - *a.metric(n);
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  const std::string ha = "A: run " + std::to_string(a.info.id),
                    hb = "B: run " + std::to_string(b.info.id);
  std::printf("%-24s %16s %16s %14s\n", "", ha.c_str(), hb.c_str(), "B - A");
  std::printf("%-24s %16s %16s\n", "recipe", a.info.recipe_name.c_str(),
              b.info.recipe_name.c_str());
  std::printf("%-24s %16s %16s\n", "status", run_status_name(a.info.status),
              run_status_name(b.info.status));
  for (const auto& n : names) {
    const auto va = a.metric(n), vb = b.metric(n);
    std::string delta = "-";
    if (va && vb) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%+.4g", *vb - *va);
      delta = buf;
    }
    std::printf("%-24s %16s %16s %14s\n", n.c_str(), va ? short_float(*va).c_str() : "-",
                vb ? short_float(*vb).c_str() : "-", delta.c_str());
  }
  LayerTable t;
  t.add(a.layers);
  t.add(b.layers);
  if (t.layers.empty()) return 0;
  const int w = int(t.width());
  std::printf("\n%-*s", w, "layer");
  for (const auto& n : t.names) std::printf(" %18s %18s", ("A " + n).c_str(), ("B " + n).c_str());
  std::printf("\n");
  for (const auto& l : t.layers) {
    std::printf("%-*s", w, l.c_str());
    for (const auto& n : t.names)
      std::printf(" %18s %18s", LayerTable::cell(a.layers, l, n).c_str(),
                  LayerTable::cell(b.layers, l, n).c_str());
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int run_runs(const std::vector<std::string>& argv) {
  Args args(argv, {"status"}, {"json"});
  const auto& pos = args.positional();
  if (pos.size() < 2)
    throw UsageError{"runs needs a subcommand and a project or database (see mcw help runs)"};
  const std::string& sub = pos[0];
  const size_t want = sub == "list" ? 2 : sub == "show" ? 3 : sub == "compare" ? 4 : 0;
  if (want == 0) throw UsageError{"unknown runs subcommand '" + sub + "' (list, show, compare)"};
  if (pos.size() != want)
    throw UsageError{"wrong number of arguments for runs " + sub + " (see mcw help runs)"};
  Opened o = open_store(pos[1]);
  if (sub == "list") return list(*o.store, o.filter, args);
  if (sub == "show") return show(get(*o.store, parse_run_id(pos[2], {})), args);
  return compare(get(*o.store, parse_run_id(pos[2], {})), get(*o.store, parse_run_id(pos[3], {})), args);
}

}  // namespace mcw::cli
