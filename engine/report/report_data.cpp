#include "engine/report/report_data.h"

#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/io/model_file.h"
#include "engine/kernels/cpu_features.h"
#include "engine/runs/fingerprint.h"
#include "engine/runs/process_identity.h"
#include "engine/runs/run_pareto.h"

namespace mcw {

namespace fs = std::filesystem;

namespace {

ReportModel read_model(const std::string& path) {
  ReportModel m;
  m.path = path;
  if (path.empty()) {
    m.error = "the project has no model";
    return m;
  }
  try {
    const ModelFile f = open_model_file(path);
    m.format = model_format_name(f.format);
    m.architecture = f.architecture;
    m.parameters = f.parameter_count();
    m.bytes = f.byte_count();
    for (const Tensor& t : f.tensors) {
      ReportTensor r;
      r.name = t.name();
      r.dtype = std::string(dtype_name(t.dtype()));
      r.shape = t.shape();
      r.parameters = uint64_t(std::max<int64_t>(t.numel(), 0));
      r.bytes = t.nbytes();
      m.tensors.push_back(std::move(r));
    }
    m.fingerprint = model_fingerprint(f);
  } catch (const Error& e) {
    m = ReportModel{};
    m.path = path;
    m.error = e.what();
  }
  return m;
}

ReportMachine this_machine() {
  ReportMachine m;
  m.host = host_name();
  m.cpu = cpu_model();
  m.simd = simd_level_name(cpu_features().level);
  m.threads = tbb::this_task_arena::max_concurrency();
  m.mcw_version = MCW_VERSION;
  return m;
}

}  // namespace

bool ReportData::on_front_latency(size_t i) const {
  return std::binary_search(front_latency.begin(), front_latency.end(), i);
}
bool ReportData::on_front_size(size_t i) const {
  return std::binary_search(front_size.begin(), front_size.end(), i);
}
size_t ReportData::count(RunStatus status) const {
  return size_t(std::count_if(runs.begin(), runs.end(),
                              [&](const RunRecord& r) { return r.info.status == status; }));
}
const RunRecord* ReportData::baseline() const {
  for (auto it = runs.rbegin(); it != runs.rend(); ++it)
    if (it->info.status == RunStatus::Done && it->info.recipe_name == "baseline") return &*it;
  return nullptr;
}

std::vector<size_t> report_front(const std::vector<RunRecord>& runs,
                                 const std::string& other_metric) {
  std::vector<RunRecord> done;
  std::vector<size_t> where;
  for (size_t i = 0; i < runs.size(); ++i)
    if (runs[i].info.status == RunStatus::Done) {
      RunRecord r;
      r.info.id = runs[i].info.id;
      r.metrics = runs[i].metrics;
      done.push_back(std::move(r));
      where.push_back(i);
    }
  std::vector<size_t> out;
  for (size_t k : pareto_runs(done, {kReportAccuracyMetric, other_metric})) out.push_back(where[k]);
  return out;
}

void compute_report_fronts(ReportData& d) {
  d.front_latency = report_front(d.runs, kReportLatencyMetric);
  d.front_size = report_front(d.runs, kReportSizeMetric);
}

std::vector<size_t> report_layer_runs(const ReportData& d, size_t max_runs) {
  std::vector<size_t> with_layers;
  for (size_t i = 0; i < d.runs.size(); ++i) {
    const RunRecord& r = d.runs[i];
    if (r.info.status != RunStatus::Done) continue;
    if (std::any_of(r.layers.begin(), r.layers.end(),
                    [](const LayerMetric& m) { return m.name == "relative_error"; }))
      with_layers.push_back(i);
  }
  auto accuracy = [&](size_t i) {
    const auto v = d.runs[i].metric(kReportAccuracyMetric);
    return v && std::isfinite(*v) ? *v : HUGE_VAL;
  };
  std::stable_sort(with_layers.begin(), with_layers.end(), [&](size_t a, size_t b) {
    const bool fa = d.on_front_latency(a) || d.on_front_size(a);
    const bool fb = d.on_front_latency(b) || d.on_front_size(b);
    if (fa != fb) return fa;
    return accuracy(a) < accuracy(b);
  });
  if (with_layers.size() > max_runs) with_layers.resize(max_runs);
  return with_layers;
}

ReportData load_report_data(const std::string& project_file) {
  ReportData d;
  d.project = load_project(project_file);
  d.project_file = fs::absolute(fs::path(project_file)).lexically_normal().string();
  d.problems = check_project(d.project);
  d.database_path = d.project.database_path.empty()
                        ? default_database_path(project_file, d.project.name)
                        : d.project.database_path;
  d.model = read_model(d.project.model_path);
  d.machine = this_machine();
  d.generated_at =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

  std::error_code ec;
  d.database_exists = fs::is_regular_file(d.database_path, ec);
  if (d.database_exists) {
    const auto store = RunStore::open_existing(d.database_path);
    std::vector<RunInfo> infos = store->list_runs({d.project.name, std::nullopt});
    std::sort(infos.begin(), infos.end(),
              [](const RunInfo& a, const RunInfo& b) { return a.id < b.id; });
    for (const RunInfo& info : infos)
      if (auto r = store->get_run(info.id)) d.runs.push_back(std::move(*r));
    d.sensitivity_fingerprint = d.model.fingerprint;
    if (d.sensitivity_fingerprint.empty() && !d.runs.empty())
      d.sensitivity_fingerprint = d.runs.back().info.model_fingerprint;
    if (!d.sensitivity_fingerprint.empty())
      d.sensitivity = store->list_sensitivity(d.sensitivity_fingerprint);
  }
  compute_report_fronts(d);
  return d;
}

}  // namespace mcw
