// mcw sensitivity: every linear layer compressed alone at each setting, measured end to end
// (KL divergence to the original on calibration windows) or by a cheap proxy (the relative
// output error of the layer or of its block), printed as a layer x setting table and kept
// in the project's run database (asked again, the scan reads it back).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/cluster_follow.h"
#include "app/cli/commands.h"
#include "app/cli/progress_bar.h"
#include "app/cli/scan_common.h"
#include "engine/cluster/cluster_runs.h"
#include "engine/core/error.h"
#include "engine/search/sensitivity_cells.h"
#include "engine/search/sensitivity_scan.h"

namespace mcw::cli {

const char* const kSensitivityUsage =
    "usage: mcw sensitivity <project.mcwproj> [--settings w8,w4,w3,w2,s25,s50,s75]\n"
    "                       [--measure kl|layer|block] [--windows N] [--window N]\n"
    "                       [--calib-windows N] [--calib-window N] [--layers P,P...] [--json]\n\n"
    "Compresses each linear layer of the project's model alone at each setting and measures\n"
    "what it costs, on the calibration text (the evaluation text when the project has none):\n"
    "  kl     (default) the KL divergence of the model's predictions to the original's (nats\n"
    "         per token) on the first N windows (default 8), each of the project's window\n"
    "         length unless --window is given; a cell of block L runs blocks L.. and the head\n"
    "         from the original's kept block-L inputs.\n"
    "  layer  the layer's relative output error tr(dW.XtX.dWt)/tr(W.XtX.Wt), X its inputs on\n"
    "         --calib-windows (default 64) windows of --calib-window tokens (default 256)\n"
    "         spread over the text: one calibration pass, then no model forward per cell.\n"
    "  block  the relative error of the layer's block output on the kl windows: one block\n"
    "         forward per cell.\n"
    "Settings: w<bits>[g<group>] is round-to-nearest, asymmetric (bits 2/3/4/8, group\n"
    "32/64/128, default 128, fitted to the layer's width); s<percent> is magnitude pruning.\n"
    "--layers scans only the linears whose name after 'model.layers.' starts with one of the\n"
    "prefixes (e.g. 0.,15.mlp.down_proj). Cells are stored in the project's run database\n"
    "under the model's fingerprint and the measure; the same scan asked again reads them\n"
    "back. The memory the scan will hold is printed on stderr first. --json prints the\n"
    "table as JSON.\n\n"
    "--on slurm [--tasks N] [--partition P] [--time T] [--mem M] [--gpus N]\n"
    "[--max-concurrent K] computes the cells on a Slurm cluster instead (see mcw help run\n"
    "for what the nodes need): one array task per block (or per --layers prefix), in N\n"
    "batches when --tasks is given, each writing its cells to its own result file; they are\n"
    "merged into the project's run database as the tasks finish, and the table is printed\n"
    "from there at the end.\n\n"
    "Exit status: 0 done, 1 a task failed, 130 cancelled (the finished cells are kept).\n\n"
    "usage: mcw sensitivity <model.onnx> --eval SET [--settings w8,w4,s50] [--lines N]\n"
    "                       [--json]\n\n"
    "An ONNX graph: each Conv/ConvTranspose/MatMul/Gemm layer at each setting, measured on\n"
    "the first N (default 16) images of the OCR set against the original graph's output:\n"
    "KL divergence per row for a recogniser's character probabilities, else the relative\n"
    "squared error (a detector's map). Not stored in a run database.\n";

// The scan's cells computed as a Slurm job (cluster_runs.h) and merged into `store`; the
// caller then reads them back as a cached scan. The tasks get this command's own options.
static int scan_on_slurm(const Args& args, const ProjectRunInputs& in, RunStore& store) {
  std::vector<std::string> prefixes;
  if (auto l = args.value("layers")) prefixes = list_option(*l);
  if (prefixes.empty())  // one per block: "0.", "1.", ...
    for (const std::string& l : linear_layer_names(in.base)) {
      const std::string block = std::to_string(block_of_layer(l)) + ".";
      if (std::find(prefixes.begin(), prefixes.end(), block) == prefixes.end())
        prefixes.push_back(block);
    }
  const std::vector<std::string> batches =
      scan_layer_batches(prefixes, int(args.int_or("tasks", int64_t(prefixes.size()))));
  // The tasks measure as this command would: its measuring options, as given.
  std::vector<std::string> forwarded;
  for (const char* o :
       {"settings", "measure", "windows", "window", "calib-windows", "calib-window"})
    if (const auto v = args.value(o))
      forwarded.insert(forwarded.end(), {std::string("--") + o, *v});
  const std::string dir = new_cluster_job_dir(in.database_path);
  std::vector<ClusterTask> tasks;
  for (size_t b = 0; b < batches.size(); ++b) {
    std::vector<std::string> task = {std::filesystem::read_symlink("/proc/self/exe"), "sensitivity",
                                     std::filesystem::absolute(in.project_file)};
    task.insert(task.end(), forwarded.begin(), forwarded.end());
    task.insert(task.end(), {"--layers", batches[b], "--result-store",
                             cluster_result_path(dir, int(b), "sqlite")});
    tasks.push_back({"layers " + batches[b], task});
  }
  write_cluster_job(dir, tasks);
  const std::string job = submit_cluster_job(dir, slurm_settings(args, in.project.cluster));
  std::fprintf(stderr, "mcw: submitted Slurm job %s: %zu task(s), files in %s\n", job.c_str(),
               tasks.size(), dir.c_str());
  return follow_cluster_job(dir, [&](int task, const std::string&) {
    merge_task_sensitivity(store, in.fingerprint, cluster_result_path(dir, task, "sqlite"));
    return true;
  });
}

int run_sensitivity(const std::vector<std::string>& argv) {
  if (first_positional(argv, {"settings", "windows", "window", "measure", "calib-windows",
                              "calib-window", "layers", "eval", "lines"})
          .ends_with(".onnx"))
    return run_sensitivity_onnx(argv);
  Args args(argv,
            {"settings", "windows", "window", "measure", "calib-windows", "calib-window", "layers",
             "on", "tasks", "partition", "time", "mem", "gpus", "max-concurrent", "result-store"},
            {"json"});
  if (args.positional().size() != 1)
    throw UsageError{"sensitivity takes one project file (see mcw help sensitivity)"};
  const ProjectRunInputs in = load_project_run_inputs(args.positional()[0]);
  SensitivityOptions opt;
  if (auto s = args.value("settings")) opt.settings = settings_from_list(*s);
  scan_measure_options(args, in, opt);
  if (auto l = args.value("layers")) opt.layer_prefixes = list_option(*l);
  opt.windows = positive_option("windows", args.int_or("windows", 8));
  opt.window = positive_option("window", args.int_or("window", in.eval.window));
  // A cluster task's own cells: into a store of its own, renamed into place when complete.
  const std::optional<std::string> result = args.value("result-store");
  auto store = RunStore::open(result ? *result + ".partial" : in.database_path);
  const std::span<const int32_t> tokens = measured_tokens(in);
  if (const auto on = args.value("on")) {
    if (*on != "slurm") throw UsageError{"--on takes slurm (see mcw help sensitivity)"};
    if (const int status = scan_on_slurm(args, in, *store); status != 0) return status;
  }

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
  if (result) {
    store.reset();  // closed: everything is in the file
    std::filesystem::rename(*result + ".partial", *result);
  }
  const char* quantity = measure_name(t.measure);

  if (args.flag("json")) {
    nlohmann::ordered_json j;
    j["model_fingerprint"] = t.model_fingerprint;
    j["measure"] = quantity;
    j["windows"] = t.windows;
    j["window"] = t.window;
    j["cached"] = t.cached;
    j["computed"] = t.computed;
    for (const ScanSetting& s : t.settings) j["settings"].push_back(s.name);
    j["layers"] = t.layers;
    for (size_t l = 0; l < t.layers.size(); ++l) {
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (size_t s = 0; s < t.settings.size(); ++s) row.push_back(t.value(l, s));
      j[quantity].push_back(row);
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%s, %lld window(s) of %lld tokens\n", measure_title(t.measure),
              (long long)t.windows, (long long)t.window);
  std::printf("%-24s", "layer");
  for (const ScanSetting& s : t.settings) std::printf(" %10s", s.name.c_str());
  std::printf("\n");
  for (size_t l = 0; l < t.layers.size(); ++l) {
    std::printf("%-24s", short_layer_name(t.layers[l]).c_str());
    for (size_t s = 0; s < t.settings.size(); ++s) std::printf(" %10.4g", t.value(l, s));
    std::printf("\n");
  }
  std::printf("%zu cells: %lld computed, %lld cached, in %s (%.1f s)\n", t.cells.size(),
              (long long)t.computed, (long long)t.cached,
              (result ? *result : in.database_path).c_str(), seconds);
  return 0;
}

}  // namespace mcw::cli
