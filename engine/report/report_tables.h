// What the HTML and Markdown reports share: the runs table's columns, the highlights of
// the summary, and the per-layer and sensitivity grids, as plain text cells (unescaped;
// each writer escapes for its format).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "engine/report/report_data.h"

namespace mcw {

struct RunColumn {
  const char* header;
  bool numeric;  // right-aligned
  std::string (*cell)(const ReportData& data, size_t run_index);
};
// Run, recipe, status, perplexity, change against the baseline, KL, top-1, bits per
// weight, size, ms/token, prefill tokens/s, Pareto front membership. "-" where unknown.
const std::vector<RunColumn>& report_run_columns();

// Every metric name any run recorded, in the order first recorded.
std::vector<std::string> report_metric_names(const ReportData& data);

struct ReportHighlights {
  const RunRecord* baseline = nullptr;
  const RunRecord* most_accurate = nullptr;  // lowest perplexity among compressed runs
  const RunRecord* smallest = nullptr;       // fewest bytes among compressed runs
  const RunRecord* fastest = nullptr;        // fewest ms/token among compressed runs
};
ReportHighlights report_highlights(const ReportData& data);

// A value grid: rows x columns, NaN where nothing was recorded.
struct ReportGrid {
  std::string metric;
  std::vector<std::string> rows, columns;
  std::vector<double> values;  // row-major
};
// One grid per sensitivity metric: layers (in the model's tensor order when known, else
// in natural order) by settings (natural order: "w2" before "w10").
std::vector<ReportGrid> report_sensitivity_grids(const ReportData& data);
// Per-layer "relative_error" of the given runs: layers (in recorded order) by runs
// (columns named "run ID · recipe").
ReportGrid report_layer_grid(const ReportData& data, const std::vector<size_t>& runs,
                             const std::string& metric = "relative_error");

// Runs with the same recipe name and text, for the recipes section: the run indices of
// each group, groups in order of their first run.
std::vector<std::vector<size_t>> report_recipe_groups(const ReportData& data);

// "a2" < "a10": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b);

std::string run_title(const RunRecord& r);  // "run 3 · w4g128-rtn"

}  // namespace mcw
