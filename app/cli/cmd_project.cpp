// mcw project: create a project file from the command line, or show one with the state
// of its files and a summary of its runs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "engine/core/error.h"
#include "engine/core/memory_usage.h"
#include "engine/project/project.h"
#include "engine/recipe/recipe.h"
#include "engine/runs/project_runner.h"
#include "engine/runs/run_store.h"

namespace mcw::cli {

namespace fs = std::filesystem;

const char* const kProjectUsage =
    "usage: mcw project new <file.mcwproj> --model PATH [--calibration FILE]\n"
    "                       [--evaluation FILE] [--recipe FILE]... [--name NAME] [--force]\n"
    "       mcw project show <file.mcwproj>\n\n"
    "  new   writes a project file (paths stored relative to it). Each --recipe adds a\n"
    "        recipe file, named after the file without its extension. The name defaults\n"
    "        to the file's stem. Refuses to replace an existing file, or to write a\n"
    "        project whose files are missing or whose recipes do not parse, unless --force.\n"
    "  show  prints the project, any problem with its files, and a summary of its runs\n"
    "        when its run database exists.\n";

namespace {

std::string absolute(const std::string& p) {
  return p.empty() ? p : fs::absolute(fs::path(p)).lexically_normal().string();
}

// check_project's problems, plus recipes that exist but do not parse.
std::vector<ProjectProblem> problems_of(const Project& p) {
  std::vector<ProjectProblem> out = check_project(p);
  for (size_t i = 0; i < p.recipes.size(); ++i) {
    const ProjectRecipe& r = p.recipes[i];
    std::error_code ec;
    if (!r.is_inline() && !fs::is_regular_file(r.path, ec)) continue;  // already reported
    try {
      if (r.is_inline())
        parse_recipe(r.inline_text, "recipe '" + r.name + "'");
      else
        load_recipe(r.path);
    } catch (const Error& e) {
      out.push_back({"recipes[" + std::to_string(i) + "]", e.what()});
    }
  }
  return out;
}

void print_problems(const std::vector<ProjectProblem>& problems, std::FILE* to) {
  for (const ProjectProblem& p : problems)
    std::fprintf(to, "  %-12s %s\n", p.field.c_str(), p.message.c_str());
}

int project_new(const std::string& file, const Args& args) {
  const auto model = args.value("model");
  if (!model) throw UsageError{"project new needs --model PATH"};
  std::error_code ec;
  if (fs::exists(file, ec) && !args.flag("force"))
    throw Error(file, "already exists (use --force to replace it)");
  Project p;
  p.name = args.value_or("name", fs::path(file).stem().string());
  if (p.name.empty()) throw UsageError{"the project name must not be empty"};
  p.model_path = absolute(*model);
  p.calibration_path = absolute(args.value_or("calibration", ""));
  p.evaluation_path = absolute(args.value_or("evaluation", ""));
  for (const std::string& r : args.values("recipe")) {
    ProjectRecipe rec;
    rec.name = fs::path(r).stem().string();
    rec.path = absolute(r);
    for (const ProjectRecipe& other : p.recipes)
      if (other.name == rec.name)
        throw UsageError{"two recipes would be named '" + rec.name + "' (" + other.path + " and " +
                         rec.path + ")"};
    p.recipes.push_back(std::move(rec));
  }
  p.database_path = default_database_path(file, p.name);
  const std::vector<ProjectProblem> problems = problems_of(p);
  if (!problems.empty()) {
    std::fprintf(stderr, "mcw: %s: problems:\n", file.c_str());
    print_problems(problems, stderr);
    if (!args.flag("force"))
      throw Error(file, "not written: fix the problems above or use --force");
  }
  save_project(p, file);
  std::printf("wrote %s (%zu recipe%s)\n", file.c_str(), p.recipes.size(),
              p.recipes.size() == 1 ? "" : "s");
  return 0;
}

std::string or_none(const std::string& s) { return s.empty() ? "(none)" : s; }

void print_runs(const Project& p, const std::string& db) {
  const auto store = RunStore::open_existing(db);
  const std::vector<RunRecord> runs = store->load_runs_with_metrics({p.name, std::nullopt});
  std::map<std::string, size_t> by_status;
  for (const RunRecord& r : runs) ++by_status[run_status_name(r.info.status)];
  std::string counts;
  for (const auto& [s, n] : by_status)
    counts += (counts.empty() ? "" : ", ") + std::to_string(n) + " " + s;
  std::printf("\nruns          %zu%s\n", runs.size(),
              counts.empty() ? "" : (" (" + counts + ")").c_str());
  if (runs.empty()) return;
  // The newest done run of each recipe (runs come newest first). An OCR model's runs have
  // CER and ms/image where a transformer's have perplexity and ms/token.
  const bool ocr = std::any_of(runs.begin(), runs.end(),
                               [](const RunRecord& r) { return r.metric("cer").has_value(); });
  const char* quality = ocr ? "cer" : "perplexity";
  const char* latency = ocr ? "latency_ms_per_image" : "latency_ms_per_token";
  std::printf("\n  %-24s %5s %12s %10s %8s %11s\n", "recipe", "run", ocr ? "CER" : "perplexity",
              "KL", "bits/w", ocr ? "ms/image" : "ms/token");
  std::vector<std::string> seen;
  for (const RunRecord& r : runs) {
    if (r.info.status != RunStatus::Done) continue;
    bool dup = false;
    for (const auto& s : seen) dup |= s == r.info.recipe_name;
    if (dup) continue;
    seen.push_back(r.info.recipe_name);
    auto m = [&](const char* k) {
      const auto v = r.metric(k);
      return v ? short_float(*v) : std::string("-");
    };
    std::printf("  %-24s %5lld %12s %10s %8s %11s\n", r.info.recipe_name.c_str(),
                (long long)r.info.id, m(quality).c_str(), m("kl").c_str(),
                m("bits_per_weight").c_str(), m(latency).c_str());
  }
}

int project_show(const std::string& file) {
  const Project p = load_project(file);
  const std::string db =
      p.database_path.empty() ? default_database_path(file, p.name) : p.database_path;
  std::error_code ec;
  const bool have_db = fs::is_regular_file(db, ec);
  std::printf("project       %s\nfile          %s\n", p.name.c_str(), absolute(file).c_str());
  std::printf("model         %s\ncalibration   %s\nevaluation    %s\n",
              or_none(p.model_path).c_str(), or_none(p.calibration_path).c_str(),
              or_none(p.evaluation_path).c_str());
  std::printf("eval          window %lld, stride %lld, %s\n", (long long)p.eval.window,
              (long long)p.eval.stride,
              p.eval.max_tokens > 0
                  ? ("at most " + std::to_string(p.eval.max_tokens) + " tokens").c_str()
                  : "the whole text");
  std::printf("database      %s%s\n", db.c_str(), have_db ? "" : " (not created yet)");
  std::printf("recipes       %zu\n", p.recipes.size());
  for (const ProjectRecipe& r : p.recipes)
    std::printf("  %-24s %s\n", r.name.c_str(), r.is_inline() ? "(inline)" : r.path.c_str());
  const std::vector<ProjectProblem> problems = problems_of(p);
  std::printf("problems      %s\n",
              problems.empty() ? "none" : std::to_string(problems.size()).c_str());
  print_problems(problems, stdout);
  if (have_db) print_runs(p, db);
  // Stopped runs' work beside the store: it goes on when the recipe runs again.
  const std::vector<StoppedRunWork> stopped = stopped_run_work(db);
  if (!stopped.empty())
    std::printf("\nstopped       %zu %s work kept (resumes when the recipe runs again; "
                "remove a directory to free its space)\n",
                stopped.size(), stopped.size() == 1 ? "run's" : "runs'");
  for (const StoppedRunWork& w : stopped)
    std::printf("  %s  %s, %s\n", w.dir.c_str(), w.progress.c_str(), human_bytes(w.bytes).c_str());
  return 0;
}

}  // namespace

int run_project(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "calibration", "evaluation", "recipe", "name"}, {"force"});
  const auto& pos = args.positional();
  if (pos.empty())
    throw UsageError{"project needs a subcommand: new or show (see mcw help project)"};
  if (pos[0] != "new" && pos[0] != "show")
    throw UsageError{"unknown project subcommand '" + pos[0] + "' (new, show)"};
  if (pos.size() != 2)
    throw UsageError{"project " + pos[0] + " takes one project file (see mcw help project)"};
  if (pos[0] == "new") return project_new(pos[1], args);
  return project_show(pos[1]);
}

}  // namespace mcw::cli
