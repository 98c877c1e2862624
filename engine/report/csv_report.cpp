#include "engine/report/csv_report.h"

#include "engine/report/report_tables.h"
#include "engine/report/report_text.h"

namespace mcw {

namespace {

void add_row(std::string& out, const std::vector<std::string>& fields) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += csv_field(fields[i]);
  }
  out += "\r\n";
}

}  // namespace

CsvReport csv_report(const ReportData& d) {
  CsvReport c;
  const std::vector<std::string> metrics = report_metric_names(d);
  std::vector<std::string> head = {
      "run_id",      "uuid",        "project",           "recipe",
      "status",      "started_at",  "ended_at",          "host",
      "cpu",         "mcw_version", "model_fingerprint", "pareto_latency",
      "pareto_size", "error"};
  head.insert(head.end(), metrics.begin(), metrics.end());
  add_row(c.runs, head);
  for (size_t i = 0; i < d.runs.size(); ++i) {
    const RunRecord& r = d.runs[i];
    const RunInfo& f = r.info;
    std::vector<std::string> row = {std::to_string(f.id),
                                    f.uuid,
                                    f.project,
                                    f.recipe_name,
                                    run_status_name(f.status),
                                    format_utc_time(f.started_at),
                                    format_utc_time(f.ended_at),
                                    f.host,
                                    f.cpu,
                                    f.mcw_version,
                                    f.model_fingerprint,
                                    d.on_front_latency(i) ? "1" : "0",
                                    d.on_front_size(i) ? "1" : "0",
                                    f.error};
    for (const std::string& m : metrics) {
      const auto v = r.metric(m);
      row.push_back(v ? format_exact(*v) : "");
    }
    add_row(c.runs, row);
  }

  add_row(c.layers, {"run_id", "recipe", "layer", "metric", "value"});
  for (const RunRecord& r : d.runs)
    for (const LayerMetric& m : r.layers)
      add_row(c.layers, {std::to_string(r.info.id), r.info.recipe_name, m.layer, m.name,
                         format_exact(m.value)});

  add_row(c.sensitivity, {"model_fingerprint", "layer", "setting", "metric", "value"});
  for (const SensitivityEntry& e : d.sensitivity)
    add_row(c.sensitivity,
            {d.sensitivity_fingerprint, e.layer, e.setting, e.metric, format_exact(e.value)});
  return c;
}

}  // namespace mcw
