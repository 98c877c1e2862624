// The report as CSV (RFC 4180: CRLF line ends, fields quoted where needed, numbers in the
// shortest form that reads back exactly). Three tables, because they have different
// columns and one CSV file holds one table:
//   runs         one row per run: run_id, uuid, project, recipe, status, started_at,
//                ended_at (UTC), host, cpu, mcw_version, model_fingerprint,
//                pareto_latency, pareto_size (1 or 0), error, then one column per metric
//                any run recorded (empty where a run lacks it)
//   layers       one row per per-layer metric: run_id, recipe, layer, metric, value
//   sensitivity  one row per sensitivity entry: model_fingerprint, layer, setting,
//                metric, value
// write_report() writes them to FILE.csv, FILE-layers.csv and FILE-sensitivity.csv.
#pragma once
#include <string>

#include "engine/report/report_data.h"

namespace mcw {

struct CsvReport {
  std::string runs, layers, sensitivity;
};

CsvReport csv_report(const ReportData& data);

}  // namespace mcw
