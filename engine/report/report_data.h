// Everything a review report shows, gathered once from a project file: the project, its
// model, the machine, the recorded runs with their per-layer metrics, the sensitivity
// scan of the model and the Pareto fronts. The writers (HTML, Markdown, CSV) only format
// this struct. Nothing here needs a successful run: a project whose model is missing or
// whose store is empty still gives a report that says so.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/project/project.h"
#include "engine/runs/run_store.h"

namespace mcw {

// The metrics the plots compare, all minimised, as project_runner records them.
inline constexpr const char* kReportAccuracyMetric = "perplexity";
inline constexpr const char* kReportLatencyMetric = "latency_ms_per_token";
inline constexpr const char* kReportSizeMetric = "size_bytes";

struct ReportTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t parameters = 0, bytes = 0;
};

struct ReportModel {
  std::string path, format, architecture, fingerprint;
  uint64_t parameters = 0, bytes = 0;
  std::vector<ReportTensor> tensors;  // in file order
  std::string error;                  // why the model could not be read; empty when read
  bool loaded() const { return error.empty() && !format.empty(); }
};

struct ReportMachine {
  std::string host, cpu, simd, mcw_version;
  int threads = 0;
};

struct ReportData {
  std::string project_file;
  Project project;
  std::vector<ProjectProblem> problems;  // check_project()'s list
  std::string database_path;
  bool database_exists = false;
  ReportModel model;
  ReportMachine machine;    // where the report was made (runs record their own host and CPU)
  double generated_at = 0;  // Unix seconds
  // The project's runs, oldest first, each with metrics, per-layer metrics and artifacts.
  std::vector<RunRecord> runs;
  // The sensitivity scan of the project's model: keyed by the model's fingerprint, or by
  // the newest run's when the model cannot be read.
  std::string sensitivity_fingerprint;
  std::vector<SensitivityEntry> sensitivity;
  // Indices into runs of the Pareto fronts of done runs: accuracy against latency, and
  // accuracy against size (see report_front).
  std::vector<size_t> front_latency, front_size;

  bool on_front_latency(size_t run_index) const;
  bool on_front_size(size_t run_index) const;
  size_t count(RunStatus status) const;
  // The newest done baseline run, if any.
  const RunRecord* baseline() const;
};

// Reads the project, its model (tensor list and fingerprint), the store (when the file
// exists: a report never creates one) and the sensitivity entries. Throws mcw::Error only
// for a project file it cannot read or a store that is damaged; a missing model is noted
// in model.error.
ReportData load_report_data(const std::string& project_file);

// Pareto front of the done runs over (accuracy metric, other metric), both minimised:
// pareto_runs() over the done runs, as indices into `runs`, ascending.
std::vector<size_t> report_front(const std::vector<RunRecord>& runs,
                                 const std::string& other_metric);

// Fills the fronts of `data` from its runs (load_report_data does; tests that build a
// ReportData by hand call it).
void compute_report_fronts(ReportData& data);

// The runs whose per-layer errors the report draws: done runs with per-layer
// "relative_error" metrics, those on a Pareto front first, ordered by accuracy; at most
// `max_runs`. Indices into data.runs.
std::vector<size_t> report_layer_runs(const ReportData& data, size_t max_runs);

}  // namespace mcw
