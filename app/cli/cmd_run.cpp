// mcw run: runs a project's recipes (all, or those named) and records each in the
// project's run database, with the uncompressed baseline once per model so plots have a
// reference point. Ctrl-C cancels: the current run is recorded as cancelled.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/ocr_common.h"
#include "app/cli/progress_bar.h"
#include "engine/core/error.h"
#include "engine/runs/project_runner.h"

namespace mcw::cli {

const char* const kRunUsage =
    "usage: mcw run <project.mcwproj> [--recipe NAME]... [--no-baseline]\n\n"
    "Runs each recipe of the project (or only those named with --recipe, in that order):\n"
    "compresses the model with the calibration text, evaluates it on the evaluation text\n"
    "against the original (perplexity, KL, top-1 agreement) with the project's window,\n"
    "stride and token limit, and measures decode latency (ms per token after a 64-token\n"
    "prefill, median of 3, with its spread and the share of the CPUs other processes took;\n"
    "a run whose layers have the same packed layouts as an earlier run's measured on a quiet\n"
    "machine shares that measurement) and prefill speed on this machine. Each run, its recipe, metrics\n"
    "and per-layer errors go to the project's run database (see mcw runs). A run of the\n"
    "uncompressed model (recipe \"baseline\") is recorded first when the database has none\n"
    "for this model, unless --no-baseline.\n\n"
    "Exit status: 0 when every run is done, 1 when one failed, 130 when cancelled.\n";

static std::vector<ProjectRecipe> select_recipes(const ProjectRunInputs& in,
                                                 const std::vector<std::string>& names) {
  if (names.empty()) return in.project.recipes;
  std::vector<ProjectRecipe> out;
  for (const std::string& n : names) {
    const ProjectRecipe* found = nullptr;
    for (const ProjectRecipe& r : in.project.recipes)
      if (r.name == n) found = &r;
    if (!found) {
      std::string known;
      for (const ProjectRecipe& r : in.project.recipes)
        known += (known.empty() ? "" : ", ") + r.name;
      throw Error(in.project_file, "no recipe named '" + n + "' (the project has: " +
                                       (known.empty() ? "none" : known) + ")");
    }
    out.push_back(*found);
  }
  return out;
}

static void print_outcome(const std::string& name, const RecipeRunOutcome& o) {
  std::printf("run %-5lld %-24s %-10s", (long long)o.run_id, name.c_str(),
              run_status_name(o.status));
  auto get = [&](const char* key) {
    for (const Metric& m : o.metrics)
      if (m.name == key) return m.value;
    return 0.0;
  };
  const auto has = [&](const char* key) {
    return std::any_of(o.metrics.begin(), o.metrics.end(),
                       [&](const Metric& m) { return m.name == key; });
  };
  if (o.status == RunStatus::Done && has("cer"))  // an ONNX recogniser
    std::printf(" CER %.2f%%  exact %.1f%%  KL %s  %.3f bits/w  %s ms/image", 100 * get("cer"),
                100 * get("line_accuracy"), short_float(get("kl")).c_str(), get("bits_per_weight"),
                short_float(get("latency_ms_per_image")).c_str());
  else if (o.status == RunStatus::Done && has("recall"))  // an ONNX detector
    std::printf(" recall %.1f%%  precision %.1f%%  map error %s  %.3f bits/w  %s ms/image",
                100 * get("recall"), 100 * get("precision"), short_float(get("kl")).c_str(),
                get("bits_per_weight"), short_float(get("latency_ms_per_image")).c_str());
  else if (o.status == RunStatus::Done)
    std::printf(" ppl %s  KL %s  top-1 %.1f%%  %.3f bits/w  %s ms/token",
                short_float(get("perplexity")).c_str(), short_float(get("kl")).c_str(),
                100 * get("top1"), get("bits_per_weight"),
                short_float(get("latency_ms_per_token")).c_str());
  std::printf("\n");
  std::fflush(stdout);
  if (o.status == RunStatus::Failed)
    std::fprintf(stderr, "mcw: run %lld (%s) failed: %s\n", (long long)o.run_id, name.c_str(),
                 o.error.c_str());
}

int run_run(const std::vector<std::string>& argv) {
  Args args(argv, {"recipe"}, {"no-baseline"});
  if (args.positional().size() != 1)
    throw UsageError{"run takes one project file (see mcw help run)"};
  const ProjectRunInputs in = load_project_run_inputs(args.positional()[0], image_loader());
  const std::vector<ProjectRecipe> recipes = select_recipes(in, args.values("recipe"));
  const auto store = RunStore::open(in.database_path);
  if (store->stale_runs_marked() > 0)
    std::fprintf(stderr,
                 "mcw: %d run(s) left running by a process that ended are now marked interrupted\n",
                 store->stale_runs_marked());

  const SigintCancel sigint;
  std::unique_ptr<ProgressBar> bar;
  std::string current;
  RunHooks hooks;
  hooks.on_phase = [&](const std::string& phase) {
    bar.reset();
    bar = std::make_unique<ProgressBar>(current + ": " + phase);
  };
  hooks.progress = [&](const ProgressEvent& e) {
    if (bar) bar->update(e);
  };
  hooks.log = [&](const std::string& line) {
    if (bar) bar->end_line();
    std::fprintf(stderr, "mcw: %s: %s\n", current.c_str(), line.c_str());
  };
  bool failed = false;
  auto finish = [&](const std::string& name, const RecipeRunOutcome& o) {
    bar.reset();
    print_outcome(name, o);
    failed |= o.status == RunStatus::Failed;
    return o.status == RunStatus::Cancelled;
  };
  if (!args.flag("no-baseline") && !has_project_baseline(*store, in)) {
    current = kBaselineRecipe;
    if (finish(current, run_project_baseline(*store, in, hooks, &sigint.token()))) return 130;
  }
  for (const ProjectRecipe& r : recipes) {
    current = r.name;
    if (finish(r.name, run_project_recipe(*store, in, r, hooks, &sigint.token()))) return 130;
  }
  std::printf("runs in %s\n", in.database_path.c_str());
  return failed ? 1 : 0;
}

}  // namespace mcw::cli
