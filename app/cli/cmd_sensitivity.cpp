// mcw sensitivity: every linear layer compressed alone at each setting, the KL divergence
// to the original on calibration windows printed as a layer x setting table and kept in
// the project's run database (asked again, the scan reads it back).
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/progress_bar.h"
#include "app/cli/scan_common.h"
#include "engine/core/error.h"

namespace mcw::cli {

const char* const kSensitivityUsage =
    "usage: mcw sensitivity <project.mcwproj> [--settings w8,w4,w3,w2,s25,s50,s75]\n"
    "                       [--windows N] [--window N] [--json]\n\n"
    "Compresses each linear layer of the project's model alone at each setting and measures\n"
    "the KL divergence of the model's predictions to the original's (nats per token) on the\n"
    "first N windows (default 8) of the calibration text (the evaluation text when the\n"
    "project has none), each of the project's window length unless --window is given.\n"
    "Settings: w<bits>[g<group>] is round-to-nearest, asymmetric (bits 2/3/4/8, group\n"
    "32/64/128, default 128, fitted to the layer's width); s<percent> is magnitude pruning.\n"
    "Cells are stored in the project's run database under the model's fingerprint; the same\n"
    "scan asked again reads them back. --json prints the table as JSON.\n\n"
    "Exit status: 0 done, 130 cancelled (the finished cells are kept).\n";

int run_sensitivity(const std::vector<std::string>& argv) {
  Args args(argv, {"settings", "windows", "window"}, {"json"});
  if (args.positional().size() != 1)
    throw UsageError{"sensitivity takes one project file (see mcw help sensitivity)"};
  const ProjectRunInputs in = load_project_run_inputs(args.positional()[0]);
  SensitivityOptions opt;
  if (auto s = args.value("settings")) opt.settings = settings_from_list(*s);
  opt.windows = positive_option("windows", args.int_or("windows", 8));
  opt.window = positive_option("window", args.int_or("window", in.eval.window));
  const auto store = RunStore::open(in.database_path);
  const std::span<const int32_t> tokens = measured_tokens(in);

  const SigintCancel sigint;
  const auto t0 = std::chrono::steady_clock::now();
  SensitivityTable t;
  try {
    t = run_scan_with_progress(in, tokens, *store, opt, sigint.token());
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: cancelled; the finished cells are kept in %s\n",
                 in.database_path.c_str());
    return 130;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (args.flag("json")) {
    nlohmann::ordered_json j;
    j["model_fingerprint"] = t.model_fingerprint;
    j["windows"] = t.windows;
    j["window"] = t.window;
    j["cached"] = t.cached;
    j["computed"] = t.computed;
    for (const ScanSetting& s : t.settings) j["settings"].push_back(s.name);
    j["layers"] = t.layers;
    for (size_t l = 0; l < t.layers.size(); ++l) {
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (size_t s = 0; s < t.settings.size(); ++s) row.push_back(t.at(l, s).kl);
      j["kl"].push_back(row);
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("KL divergence to the original (nats/token), %lld window(s) of %lld tokens\n",
              (long long)t.windows, (long long)t.window);
  std::printf("%-24s", "layer");
  for (const ScanSetting& s : t.settings) std::printf(" %10s", s.name.c_str());
  std::printf("\n");
  for (size_t l = 0; l < t.layers.size(); ++l) {
    std::printf("%-24s", short_layer_name(t.layers[l]).c_str());
    for (size_t s = 0; s < t.settings.size(); ++s) std::printf(" %10.4g", t.at(l, s).kl);
    std::printf("\n");
  }
  std::printf("%zu cells: %lld computed, %lld cached, in %s (%.1f s)\n", t.cells.size(),
              (long long)t.computed, (long long)t.cached, in.database_path.c_str(), seconds);
  return 0;
}

}  // namespace mcw::cli
