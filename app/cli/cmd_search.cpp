// mcw search: mixed precision under a budget. Scans (or reads back) the sensitivity of
// each layer at each bit width, picks levels greedily, improves them with an evolutionary
// search on the measured KL of compressed candidates, and writes the recipe.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "app/cli/args.h"
#include "app/cli/format.h"
#include "app/cli/commands.h"
#include "app/cli/progress_bar.h"
#include "app/cli/scan_common.h"
#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/search/layer_latency.h"
#include "engine/search/mixed_precision.h"

namespace mcw::cli {

const char* const kSearchUsage =
    "usage: mcw search <project.mcwproj> (--budget B[bpw] | --max-bytes N | --max-latency-ms T)\n"
    "                  [--levels w8,w4,w3,w2] [--generations N] [--offspring N] [--seed N]\n"
    "                  [--windows N] [--no-evolve] [--fresh-latency] [--max-memory SIZE] [--out recipe.yaml]\n"
    "                  [--measure kl|layer|block] [--calib-windows N] [--calib-window N]\n\n"
    "Chooses a bit width per linear layer so that the model meets the budget: average bits\n"
    "per weight (compressed linears plus everything else at 16 bits, as mcw compress counts\n"
    "them), total bytes, or decode milliseconds per token. The levels' sensitivity scan is\n"
    "run first (read back when the project's database has it, see mcw sensitivity). A\n"
    "greedy pass lowers the layers that lose the least KL per unit of budget saved; an\n"
    "evolutionary search (EvoPress-style level switches, selection on the measured KL of\n"
    "the compressed candidates, few windows for many offspring and all of them for the\n"
    "survivors; default 20 generations of 16) then improves on it. The result is written\n"
    "as a recipe (default mixed-precision.yaml) that mcw compress and mcw run take; its\n"
    "prediction section holds its exact size and the budget (the studio's what-if mode\n"
    "draws that budget on the trade-off plot).\n\n"
    "--max-latency-ms times each layer at each level on this machine (one decode-shaped\n"
    "matrix-vector product on the packed low-bit kernel the layer would deploy with; one\n"
    "layer per weight shape), and predicts the model's decode step as those times plus the\n"
    "rest of the model. The times are kept in the project's database for this machine\n"
    "(--fresh-latency measures them again).\n\n"
    "--measure picks the scan the greedy pass starts from (as mcw sensitivity; layer and\n"
    "block are far cheaper than kl on a large model); the evolution measures KL whatever it is.\n\n"
    "--max-memory SIZE caps what the search holds (default: what the system has available).\n"
    "Levels that need no calibration (w8..w2) compress every layer at every level once, into\n"
    "files beside the project's database; candidates run on the original model with each\n"
    "searched layer decoded tile by tile from a cache of those layers, as many at once as fit\n"
    "beside it. Levels that need calibration compress each candidate whole. The search is\n"
    "refused before it starts when not one candidate fits.\n\n"
    "Exit status: 0 done, 1 when the budget cannot be met, 130 when cancelled.\n";

namespace {

double number_option(const std::string& name, std::string v, const char* suffix) {
  if (v.size() > std::strlen(suffix) && v.ends_with(suffix))
    v.resize(v.size() - std::strlen(suffix));
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !(x > 0))
    throw UsageError{"option --" + name + " expects a positive number, got '" + v + "'"};
  return x;
}

void print_solution(const char* what, const MixedPrecisionSolution& s, BudgetKind kind) {
  std::printf("%-9s predicted KL %-10.4g measured KL %-10.4g ppl %-9.4g %.3f bits/w  %llu bytes",
              what, s.predicted_kl, s.measured_kl, s.measured_perplexity, s.bits_per_weight,
              (unsigned long long)(s.storage_bits / 8));
  if (kind == BudgetKind::LatencyMs) std::printf("  %.4g ms/token (predicted)", s.budget_used);
  std::printf("\n");
}

}  // namespace

int run_search(const std::vector<std::string>& argv) {
  Args args(argv,
            {"budget", "max-bytes", "max-latency-ms", "levels", "generations", "offspring", "seed",
             "windows", "out", "max-memory", "measure", "calib-windows", "calib-window"},
            {"no-evolve", "fresh-latency"});
  if (args.positional().size() != 1)
    throw UsageError{"search takes one project file (see mcw help search)"};
  MixedPrecisionOptions mp;
  int budgets = 0;
  if (auto v = args.value("budget"))
    mp.budget = BudgetKind::BitsPerWeight, mp.limit = number_option("budget", *v, "bpw"), ++budgets;
  if (auto v = args.value("max-bytes"))
    mp.budget = BudgetKind::Bytes, mp.limit = number_option("max-bytes", *v, "B"), ++budgets;
  if (auto v = args.value("max-latency-ms"))
    mp.budget = BudgetKind::LatencyMs, mp.limit = number_option("max-latency-ms", *v, "ms"),
    ++budgets;
  if (budgets != 1)
    throw UsageError{"search needs exactly one of --budget, --max-bytes, --max-latency-ms"};
  mp.evolve = !args.flag("no-evolve");
  mp.evolution.generations = int(positive_option("generations", args.int_or("generations", 20)));
  mp.evolution.offspring = int(positive_option("offspring", args.int_or("offspring", 16)));
  mp.evolution.seed = uint64_t(args.int_or("seed", 1));
  const std::string out_path = args.value_or("out", "mixed-precision.yaml");
  const auto max_memory = args.value("max-memory");
  mp.memory_budget = max_memory ? parse_bytes(*max_memory, "max-memory") : memory_available();

  const ProjectRunInputs in = load_project_run_inputs(args.positional()[0]);
  SensitivityOptions so;
  so.settings = settings_from_list(args.value_or("levels", "w8,w4,w3,w2"));
  for (const ScanSetting& s : so.settings) mp.levels.push_back(s.name);
  so.windows = positive_option("windows", args.int_or("windows", 8));
  so.window = in.eval.window;
  scan_measure_options(args, in, so);
  mp.compress.scratch_dir = std::filesystem::path(in.database_path).parent_path().string();
  const auto store = RunStore::open(in.database_path);
  const std::span<const int32_t> tokens = measured_tokens(in);

  const SigintCancel sigint;
  const CancelToken& cancel = sigint.token();
  MixedPrecisionResult r;
  try {
    const SensitivityTable table = run_scan_with_progress(in, tokens, *store, so, cancel);
    std::printf("sensitivity: %lld cells computed, %lld cached\n", (long long)table.computed,
                (long long)table.cached);
    if (mp.budget == BudgetKind::LatencyMs) {
      const LayerLatencyTable lt = layer_latency_with_progress(
          in, tokens, *store, table, mp.levels, args.flag("fresh-latency"), cancel);
      mp.latency_ms = lt.cost();
      mp.latency_fixed_ms = lt.rest_ms;
      std::printf(
          "latency: model %.4g ms/token (uncompressed), of which %.4g outside the searched layers\n",
          lt.model_ms_per_token, lt.rest_ms);
    }
    const KlMeter meter(in.base, tokens, table.window, so.windows, &cancel);
    ProgressBar bar("search");
    r = search_mixed_precision(in.base, table, meter, tokens, mp, bar.callback(), &cancel);
  } catch (const Cancelled&) {
    std::fprintf(stderr, "mcw: cancelled\n");
    return 130;
  }
  if (!r.feasible) {
    std::fprintf(stderr, "mcw: %s: %s\n", in.project_file.c_str(), r.message.c_str());
    return 1;
  }
  std::printf("%-24s %-8s %-8s\n", "layer", "greedy", "evolved");
  for (size_t l = 0; l < r.greedy.settings.size(); ++l)
    std::printf("%-24s %-8s %-8s\n", short_layer_name(r.layers[l]).c_str(),
                r.greedy.settings[l].c_str(), r.evolved.settings[l].c_str());
  print_solution("greedy", r.greedy, mp.budget);
  if (mp.evolve) {
    print_solution("evolved", r.evolved, mp.budget);
    std::printf("evolution: %d generation(s), %lld candidate evaluations, up to %lld at once "
                "(%s each)\n",
                r.evolution.generations, (long long)r.evolution.evaluations, (long long)r.memory.parallel,
                human_bytes(r.memory.per_candidate).c_str());
  }
  if (r.memory.banked)
    std::printf("compressed layers: %s in files (removed), a cache of up to %s\n",
                human_bytes(r.memory.bank_file).c_str(), human_bytes(r.memory.bank).c_str());
  // The recipe carries what the search knows of it: its exact size and the budget it was
  // chosen under (the studio draws that budget on the trade-off plot).
  Recipe out = r.evolved.recipe;
  out.prediction = {{"measure", "kl"},
                    {"stages", recipe_stages_digest(out)},
                    {"bits_per_weight", r.evolved.bits_per_weight},
                    {"size_bytes", double(r.evolved.storage_bits) / 8},
                    {budget_prediction_key(mp.budget), mp.limit}};
  const std::string yaml = recipe_to_yaml(out);
  write_file_atomically(out_path, yaml);
  std::printf("recipe written to %s\n", out_path.c_str());
  return 0;
}

}  // namespace mcw::cli
