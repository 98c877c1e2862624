// What `mcw sensitivity` and `mcw search` share: the measured tokens of a project, the
// setting list of the command line, and a scan run with a progress bar.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "app/cli/args.h"
#include "engine/core/progress.h"
#include "engine/runs/project_runner.h"
#include "engine/search/layer_latency.h"
#include "engine/search/sensitivity_scan.h"

namespace mcw::cli {

// The calibration text's tokens, or the evaluation text's (with a note on stderr) when the
// project has none.
std::span<const int32_t> measured_tokens(const ProjectRunInputs& in);
// "a,b,,c" -> {"a", "b", "c"}; UsageError when nothing is left.
std::vector<std::string> list_option(const std::string& list);
// "w8,w4,s50" -> settings; throws mcw::Error for an unknown one.
std::vector<ScanSetting> settings_from_list(const std::string& list);
// "model.layers.3.mlp.up_proj.weight" -> "3.mlp.up_proj".
std::string short_layer_name(const std::string& name);
// Positive integer option; UsageError otherwise.
int64_t positive_option(const std::string& name, long long value);

// The scan's measure and its calibration (--measure, --calib-windows, --calib-window), as
// mcw sensitivity and mcw search both take them, into `opt`.
void scan_measure_options(const Args& args, const ProjectRunInputs& in, SensitivityOptions& opt);

// Runs (or reads back) the scan with a progress bar on stderr, after one line there with
// the memory it will hold.
SensitivityTable run_scan_with_progress(const ProjectRunInputs& in, std::span<const int32_t> tokens,
                                        RunStore& store, const SensitivityOptions& opt,
                                        const CancelToken& cancel);

// The per-layer latency of `settings` over the table's layers: read back from the store
// when this machine measured them all before (unless `fresh`), else measured with a
// progress bar and stored. Says on stdout which.
LayerLatencyTable layer_latency_with_progress(const ProjectRunInputs& in,
                                              std::span<const int32_t> tokens, RunStore& store,
                                              const SensitivityTable& table,
                                              const std::vector<std::string>& settings, bool fresh,
                                              const CancelToken& cancel);

}  // namespace mcw::cli
