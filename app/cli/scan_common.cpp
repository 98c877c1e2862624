#include "app/cli/scan_common.h"

#include <cstdio>

#include "app/cli/args.h"
#include "app/cli/progress_bar.h"

namespace mcw::cli {

std::span<const int32_t> measured_tokens(const ProjectRunInputs& in) {
  if (!in.calibration_tokens.empty()) return in.calibration_tokens;
  std::fprintf(stderr, "mcw: %s has no calibration text: measuring on the evaluation text\n",
               in.project_file.c_str());
  return in.evaluation_tokens;
}

std::vector<std::string> list_option(const std::string& list) {
  std::vector<std::string> out;
  size_t from = 0;
  while (from <= list.size()) {
    const size_t comma = std::min(list.find(',', from), list.size());
    if (comma > from) out.push_back(list.substr(from, comma - from));
    from = comma + 1;
  }
  if (out.empty()) throw UsageError{"an empty list was given"};
  return out;
}

std::vector<ScanSetting> settings_from_list(const std::string& list) {
  if (list.find_first_not_of(',') == std::string::npos) throw UsageError{"no settings given"};
  std::vector<ScanSetting> out;
  for (const std::string& name : list_option(list)) out.push_back(scan_setting_from_name(name));
  return out;
}

std::string short_layer_name(const std::string& name) {
  std::string s = name;
  if (s.rfind("model.layers.", 0) == 0) s = s.substr(13);
  if (s.size() > 7 && s.ends_with(".weight")) s.resize(s.size() - 7);
  return s;
}

int64_t positive_option(const std::string& name, long long value) {
  if (value < 1) throw UsageError{"option --" + name + " must be at least 1"};
  return value;
}

void scan_measure_options(const Args& args, const ProjectRunInputs& in, SensitivityOptions& opt) {
  if (auto m = args.value("measure")) opt.measure = measure_from_name(*m);
  opt.compress.calib_windows =
      positive_option("calib-windows", args.int_or("calib-windows", opt.compress.calib_windows));
  opt.compress.calib_window = std::min<int64_t>(
      positive_option("calib-window", args.int_or("calib-window", opt.compress.calib_window)),
      in.base.cfg.max_seq_len);
}

SensitivityTable run_scan_with_progress(const ProjectRunInputs& in, std::span<const int32_t> tokens,
                                        RunStore& store, const SensitivityOptions& opt,
                                        const CancelToken& cancel) {
  SensitivityScan scan(in.base, in.fingerprint, tokens, opt);
  const SensitivityMemory m = scan.memory_estimate();
  auto mib = [](uint64_t b) { return double(b) / double(1 << 20); };
  std::fprintf(stderr,
               "mcw: %s scan holds about %.0f MiB: reference logits %.0f, block inputs %.0f, "
               "statistics %.0f, %lld cell(s) in flight at %.0f MiB each\n",
               measure_name(opt.measure), mib(m.total()), mib(m.reference_logits), mib(m.block_inputs),
               mib(m.statistics), (long long)m.parallel, mib(m.per_cell));
  ProgressBar bar("sensitivity");
  return scan.run(&store, bar.callback(), &cancel);
}

}  // namespace mcw::cli

namespace mcw::cli {

LayerLatencyTable layer_latency_with_progress(const ProjectRunInputs& in,
                                              std::span<const int32_t> tokens, RunStore& store,
                                              const SensitivityTable& table,
                                              const std::vector<std::string>& settings, bool fresh,
                                              const CancelToken& cancel) {
  if (!fresh)
    if (auto cached = load_layer_latency(store, in.fingerprint, table.layers, settings)) {
      std::printf("layer latency: read back (measured before on this machine; --fresh-latency "
                  "measures again)\n");
      return *cached;
    }
  LayerLatencyTable t;
  {
    ProgressBar bar("layer latency");
    t = measure_layer_latency(in.base, table, settings, tokens, {}, in.latency, {}, bar.callback(),
                              &cancel);
  }
  store_layer_latency(store, in.fingerprint, t);
  return t;
}

}  // namespace mcw::cli
