// mcw run: runs a project's recipes (all, or those named) and records each in the
// project's run database, with the uncompressed baseline once per model so plots have a
// reference point. Ctrl-C cancels: the current run is recorded as cancelled.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "app/cli/args.h"
#include "app/cli/cluster_follow.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/ocr_common.h"
#include "app/cli/progress_bar.h"
#include "engine/cluster/cluster_runs.h"
#include "engine/core/error.h"
#include "engine/runs/project_runner.h"

namespace mcw::cli {

const char* const kRunUsage =
    "usage: mcw run <project.mcwproj> [--recipe NAME]... [--no-baseline]\n"
    "               [--on slurm [--partition P] [--time T] [--mem M] [--gpus N]\n"
    "                [--max-concurrent K] [--no-wait]]\n"
    "       mcw run <project.mcwproj> --follow JOBDIR | --retry JOBDIR [sbatch options]\n\n"
    "Runs each recipe of the project (or only those named with --recipe, in that order):\n"
    "compresses the model with the calibration text, evaluates it on the evaluation text\n"
    "against the original (perplexity, KL, top-1 agreement) with the project's window,\n"
    "stride and token limit, and measures decode latency (ms per token after a 64-token\n"
    "prefill, median of 3, with its spread and the share of the CPUs other processes took;\n"
    "a run whose layers have the same packed layouts as an earlier run's measured on a quiet\n"
    "machine shares that measurement) and prefill speed on this machine. Each run, its recipe, "
    "metrics\n"
    "and per-layer errors go to the project's run database (see mcw runs). A run of the\n"
    "uncompressed model (recipe \"baseline\") is recorded first when the database has none\n"
    "for this model, unless --no-baseline.\n\n"
    "--on slurm sends the runs to a Slurm cluster instead (the commands sbatch, squeue and\n"
    "scancel, SLURM_CONF as for them): one array task per run, each an `mcw run` of one\n"
    "recipe writing its own result file in .mcw-cluster/ beside the run database, on a\n"
    "filesystem the nodes share with this machine (the project, its model and texts, and\n"
    "this mcw binary are read where they are). This command follows the tasks (pending,\n"
    "running, done, failed with the end of its log) and merges each finished run into the\n"
    "project's database; Ctrl-C cancels the job (scancel). --partition, --time, --mem,\n"
    "--gpus (per task) and --max-concurrent go to sbatch. --no-wait only submits; --follow\n"
    "picks a job up again from its directory (after mcw ended, or from another shell);\n"
    "--retry submits a job's failed tasks again and follows it. (Each task is\n"
    "`mcw run PROJECT --recipe NAME --no-baseline --result-store FILE`, or --baseline-only:\n"
    "its runs go to FILE, a store of their own, renamed into place when complete.)\n\n"
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

// Follows a submitted job until every task is over, merging finished runs as they come.
static int follow_and_merge_runs(const std::string& dir, const ProjectRunInputs& in,
                                 RunStore& store);

// The run as a Slurm job: submit, then follow (cluster_runs.h), unless --no-wait.
static int run_on_slurm(const Args& args, const ProjectRunInputs& in,
                        const std::vector<ProjectRecipe>& recipes, RunStore& store) {
  std::vector<std::string> names;
  for (const ProjectRecipe& r : recipes) names.push_back(r.name);
  const bool baseline = !args.flag("no-baseline") && !has_project_baseline(store, in);
  const std::string dir = new_cluster_job_dir(in.database_path);
  write_cluster_job(
      dir, project_run_tasks(std::filesystem::read_symlink("/proc/self/exe"),
                             std::filesystem::absolute(in.project_file), names, baseline, dir));
  const std::string job = submit_cluster_job(dir, slurm_settings(args, in.project.cluster));
  std::printf("submitted Slurm job %s: %zu task(s), files in %s\n", job.c_str(),
              names.size() + (baseline ? 1 : 0), dir.c_str());
  std::fflush(stdout);
  if (args.flag("no-wait")) return 0;
  return follow_and_merge_runs(dir, in, store);
}

static int follow_and_merge_runs(const std::string& dir, const ProjectRunInputs& in,
                                 RunStore& store) {
  const int status = follow_cluster_job(dir, [&](int task, const std::string& name) {
    bool ok = true;
    for (int64_t id : merge_task_runs(store, cluster_result_path(dir, task, "sqlite"))) {
      const auto run = store.get_run(id);
      print_outcome(name, RecipeRunOutcome{id, run->info.status, run->info.error, run->metrics});
      ok &= run->info.status != RunStatus::Failed;
    }
    return ok;
  });
  if (status != 130) std::printf("runs in %s\n", in.database_path.c_str());
  return status;
}

// A cluster task's own run: into a private store at `path`, written under a temporary
// name and renamed when the run is over, so that the merging side never reads half a file.
static int run_into_result_store(const std::string& path, ProjectRunInputs& in,
                                 const std::vector<ProjectRecipe>& recipes, bool baseline_only);

int run_run(const std::vector<std::string>& argv) {
  Args args(argv,
            {"recipe", "on", "partition", "time", "mem", "gpus", "max-concurrent", "result-store",
             "follow", "retry"},
            {"no-baseline", "baseline-only", "no-wait"});
  if (args.positional().size() != 1)
    throw UsageError{"run takes one project file (see mcw help run)"};
  ProjectRunInputs in = load_project_run_inputs(args.positional()[0], image_loader());
  const std::vector<ProjectRecipe> recipes = args.flag("baseline-only")
                                                 ? std::vector<ProjectRecipe>{}
                                                 : select_recipes(in, args.values("recipe"));
  if (const auto result = args.value("result-store"))
    return run_into_result_store(*result, in, recipes, args.flag("baseline-only"));
  const auto store = RunStore::open(in.database_path);
  if (const auto dir = args.value("follow")) return follow_and_merge_runs(*dir, in, *store);
  if (const auto dir = args.value("retry")) {
    const std::vector<int> again =
        retry_cluster_job(*dir, slurm_settings(args, in.project.cluster));
    std::printf("resubmitted %zu task(s) as Slurm job %s\n", again.size(),
                again.empty() ? "(none)" : cluster_job_id(*dir).c_str());
    return again.empty() ? 0 : follow_and_merge_runs(*dir, in, *store);
  }
  if (const auto on = args.value("on")) {
    if (*on != "slurm") throw UsageError{"--on takes slurm (see mcw help run)"};
    return run_on_slurm(args, in, recipes, *store);
  }
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

static int run_into_result_store(const std::string& path, ProjectRunInputs& in,
                                 const std::vector<ProjectRecipe>& recipes, bool baseline_only) {
  const std::string partial = path + ".partial";
  std::filesystem::remove(partial);
  in.database_path = path;  // a stopped compression's checkpoint goes beside it, for a retry
  int status = 0;
  {
    const auto store = RunStore::open(partial);
    const SigintCancel sigint;
    std::vector<RecipeRunOutcome> outcomes;
    if (baseline_only) {
      outcomes.push_back(run_project_baseline(*store, in, {}, &sigint.token()));
      print_outcome(kBaselineRecipe, outcomes.back());
    }
    for (const ProjectRecipe& r : recipes) {
      outcomes.push_back(run_project_recipe(*store, in, r, {}, &sigint.token()));
      print_outcome(r.name, outcomes.back());
    }
    for (const RecipeRunOutcome& o : outcomes)
      if (o.status == RunStatus::Cancelled)
        status = 130;
      else if (o.status == RunStatus::Failed && status == 0)
        status = 1;
  }  // closed: the WAL is checkpointed into the file
  std::filesystem::rename(partial, path);
  return status;
}

}  // namespace mcw::cli
