// mcw predict: what a recipe with per-layer settings would give, from the project's
// sensitivity scan and its finished runs, without running it; --add saves the recipe with
// its prediction into the project, so that its run shows predicted beside measured.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "app/cli/args.h"
#include "app/cli/commands.h"
#include "app/cli/format.h"
#include "app/cli/progress_bar.h"
#include "app/cli/scan_common.h"
#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/search/layer_latency.h"
#include "engine/search/recipe_prediction.h"

namespace mcw::cli {

const char* const kPredictUsage =
    "usage: mcw predict <project.mcwproj> --recipe R [--measure kl|layer|block]\n"
    "                   [--windows N] [--calib-windows N] [--calib-window N] [--latency [--fresh-latency]]\n"
    "                   [--add NAME] [--json]\n\n"
    "Predicts what recipe R (a file or a preset name) would give on the project's model\n"
    "without running it, from a sensitivity scan of the settings its stages use (read back\n"
    "from the project's run database, the missing cells measured first, as mcw sensitivity\n"
    "does) and the project's finished runs:\n"
    "  size, bits per weight  exact: each layer's storage as its scan cell recorded it, the\n"
    "                         rest of the model at 16 bits (mcw compress's accounting);\n"
    "  KL                     the sum of the layers' cells (kl measure), with a band from the\n"
    "                         spread of measured/predicted over the runs that recorded a\n"
    "                         prediction (two are needed);\n"
    "  perplexity             the baseline run's, times exp(slope x KL), the slope fitted on\n"
    "                         every finished compressed run of the project;\n"
    "  latency (--latency)    decode ms/token: each layer timed on its packed kernel at its\n"
    "                         setting on this machine (one layer per weight shape is\n"
    "                         compressed and timed at each setting; the others of its\n"
    "                         shape share the time), plus the rest of the model; kept in\n"
    "                         the project's database for this machine (--fresh-latency\n"
    "                         measures again).\n"
    "A stage must compress single linears (not structured or whole-model stages), one stage\n"
    "per layer. --add NAME writes the recipe with its prediction as NAME.yaml beside the\n"
    "project and adds it to the project: mcw run then records predicted beside measured.\n"
    "--measure layer or block predicts from a proxy scan: size and latency, and the sum of\n"
    "relative errors (a ranking, not a KL).\n\n"
    "Exit status: 0 done, 130 cancelled.\n";

namespace {

std::string band(double v, double lo, double hi, const char* fmt) {
  if (!std::isfinite(v)) return "unknown";
  char b[128];
  std::snprintf(b, sizeof b, fmt, v);
  std::string s = b;
  if (std::isfinite(lo) && std::isfinite(hi)) {
    std::snprintf(b, sizeof b, fmt, lo);
    s += std::string("  [") + b;
    std::snprintf(b, sizeof b, fmt, hi);
    s += std::string(", ") + b + "]";
  }
  return s;
}

// Writes `recipe` as NAME.yaml beside the project and adds it; refuses to replace either.
void add_to_project(const ProjectRunInputs& in, Recipe recipe, const RecipePrediction& p,
                    const std::string& name) {
  Project project = in.project;
  for (const ProjectRecipe& r : project.recipes)
    if (r.name == name)
      throw Error(in.project_file, "the project already has a recipe named '" + name + "'");
  const std::filesystem::path path =
      std::filesystem::path(in.project_file).parent_path() / (name + ".yaml");
  if (std::filesystem::exists(path))
    throw Error(path.string(), "exists already; choose another --add name");
  recipe.name = name;
  nlohmann::json prediction = prediction_json(p, recipe);
  for (const char* k : kBudgetKeys)  // a search's budget stays with its recipe
    if (recipe.prediction.contains(k)) prediction[k] = recipe.prediction[k];
  recipe.prediction = prediction;
  write_file_atomically(path.string(), recipe_to_yaml(recipe));
  project.recipes.push_back({name, std::filesystem::absolute(path).string(), ""});
  save_project(project, in.project_file);
  std::printf("recipe written to %s and added to %s\n", path.c_str(), in.project_file.c_str());
}

}  // namespace

int run_predict(const std::vector<std::string>& argv) {
  Args args(argv, {"recipe", "measure", "windows", "calib-windows", "calib-window", "add"},
            {"latency", "fresh-latency", "json"});
  if (args.positional().size() != 1 || !args.value("recipe"))
    throw UsageError{"predict takes one project file and --recipe (see mcw help predict)"};
  const ProjectRunInputs in = load_project_run_inputs(args.positional()[0]);
  const Recipe recipe = load_recipe(resolve_recipe(*args.value("recipe")));
  check_targets(recipe, in.base.tensor_names());
  SensitivityOptions so;
  so.settings = recipe_scan_settings(recipe, in.base);
  if (so.settings.empty())
    throw Error(recipe.source, "compresses no linear layer: nothing to predict");
  so.windows = positive_option("windows", args.int_or("windows", 8));
  so.window = in.eval.window;
  scan_measure_options(args, in, so);
  const auto store = RunStore::open(in.database_path);
  const std::span<const int32_t> tokens = measured_tokens(in);

  const SigintCancel sigint;
  SensitivityTable table;
  LayerLatencyTable latency;
  try {
    table = run_scan_with_progress(in, tokens, *store, so, sigint.token());
    if (args.flag("latency")) {
      std::vector<std::string> settings;
      for (const ScanSetting& s : table.settings) settings.push_back(s.name);
      latency = layer_latency_with_progress(in, tokens, *store, table, settings,
                                            args.flag("fresh-latency"), sigint.token());
    }
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: cancelled\n");
    return 130;
  }
  const std::vector<int> assignment = recipe_assignment(table, recipe);
  const PredictionCalibration cal =
      calibrate_prediction(store->load_runs_with_metrics({in.project.name, std::nullopt}), in.fingerprint);
  const RecipePrediction p =
      predict_assignment(table, assignment, cal, args.flag("latency") ? &latency : nullptr);

  if (args.flag("json")) {
    nlohmann::json j = prediction_json(p, recipe);
    j["recipe"] = recipe.name;
    j["calibration"] = {{"kl_runs", cal.kl_runs},
                        {"log_ratio_mean", cal.log_ratio_mean},
                        {"log_ratio_sd", cal.log_ratio_sd},
                        {"baseline_perplexity", cal.baseline_perplexity},
                        {"perplexity_runs", cal.perplexity_runs},
                        {"perplexity_slope", cal.perplexity_slope}};
    nlohmann::json layers = nlohmann::json::object();
    for (size_t l = 0; l < table.layers.size(); ++l)
      layers[table.layers[l]] =
          assignment[l] < 0 ? "keep" : table.settings[size_t(assignment[l])].name;
    j["layers"] = layers;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::map<std::string, int> count;
    for (int a : assignment) ++count[a < 0 ? "kept" : table.settings[size_t(a)].name];
    std::printf("%s on %s: %lld of %zu linears compressed (", recipe.name.c_str(),
                in.project.name.c_str(), (long long)p.compressed_layers, table.layers.size());
    bool first = true;
    for (const auto& [k, n] : count)
      std::printf("%s%s %d", first ? "" : ", ", k.c_str(), n), first = false;
    std::printf(")\n");
    std::printf("sensitivity: %s, %lld cells computed, %lld cached\n", measure_name(table.measure),
                (long long)table.computed, (long long)table.cached);
    std::printf("size          %s (%.4f bits/weight)\n", human_bytes(p.storage_bits / 8).c_str(),
                p.bits_per_weight);
    if (table.measure == SensitivityMeasure::Kl) {
      std::printf("KL            %s nats/token\n", band(p.kl, p.kl_low, p.kl_high, "%.4g").c_str());
      std::printf("perplexity    %s\n",
                  band(p.perplexity, p.perplexity_low, p.perplexity_high, "%.4f").c_str());
    } else {
      std::printf("Σ %s  %.4g\n", measure_name(table.measure), p.score);
    }
    if (std::isfinite(p.latency_ms))
      std::printf("latency       %.4g ms/token (decode)\n", p.latency_ms);
    std::printf(
        "calibration   KL band from %lld run(s) with a prediction%s; perplexity fit on %lld "
        "run(s)%s\n",
        (long long)cal.kl_runs, cal.kl_runs < 2 ? " (2 needed)" : "",
        (long long)cal.perplexity_runs,
        cal.baseline_perplexity > 0 ? "" : " (no finished baseline run: mcw run first)");
  }
  if (auto name = args.value("add")) add_to_project(in, recipe, p, *name);
  return 0;
}

}  // namespace mcw::cli
