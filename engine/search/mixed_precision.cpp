#include "engine/search/mixed_precision.h"

#include <tbb/info.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>

#include "engine/compress/calibrate.h"
#include "engine/core/error.h"
#include "engine/core/memory_usage.h"
#include "engine/search/layer_bank.h"

namespace mcw {

namespace {

const char* const kSource = "mixed-precision search";

// Recipes that make every searched layer one level: what a LayerBank is filled from.
Recipe uniform_recipe(const SensitivityTable& table, const std::string& level) {
  return mixed_precision_recipe(table, std::vector<std::string>(table.layers.size(), level), level);
}

// Layer-local levels (no calibration) compress each layer the same whatever the others
// get, so candidates can be assembled from a bank of layers compressed once.
bool layer_local(const SensitivityTable& table, const std::vector<std::string>& levels) {
  for (const std::string& l : levels)
    if (recipe_needs_calibration(uniform_recipe(table, l))) return false;
  return true;
}

}  // namespace

LevelProblem mixed_precision_problem(const SensitivityTable& table,
                                     const MixedPrecisionOptions& opt,
                                     std::vector<std::string>* levels_out) {
  std::vector<std::string> levels = opt.levels;
  if (levels.empty())
    for (const ScanSetting& s : table.settings)
      if (is_quantization_setting(s)) levels.push_back(s.name);
  if (levels.empty())
    throw Error(kSource, "the sensitivity table has no quantization setting to choose from");
  std::vector<size_t> col;
  for (const std::string& l : levels) {
    const auto i = table.setting_index(l);
    if (!i) throw Error(kSource, "level '" + l + "' is not a setting of the sensitivity table");
    if (std::count(levels.begin(), levels.end(), l) > 1)
      throw Error(kSource, "level '" + l + "' is listed twice");
    col.push_back(*i);
  }
  // Most bits first (level 0 is the most accurate start of the greedy pass).
  std::vector<size_t> order(levels.size());
  std::iota(order.begin(), order.end(), 0);
  auto total_bits = [&](size_t k) {
    double b = 0;
    for (size_t l = 0; l < table.layers.size(); ++l) b += double(table.at(l, col[k]).bits);
    return b;
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return total_bits(a) > total_bits(b); });

  LevelProblem p;
  p.layers = int64_t(table.layers.size());
  p.levels = int64_t(levels.size());
  std::vector<std::string> sorted;
  for (size_t k : order) sorted.push_back(levels[k]);
  uint64_t searched = 0;
  for (uint64_t n : table.layer_parameters) searched += n;
  if (opt.budget == BudgetKind::LatencyMs && !opt.latency_ms)
    throw Error(kSource, "a latency budget needs per-layer latency costs");
  for (size_t l = 0; l < table.layers.size(); ++l)
    for (size_t k : order) {
      const SensitivityCell& c = table.at(l, col[k]);
      p.loss.push_back(table.value(l, col[k]));  // KL, or a proxy table's relative error
      p.cost.push_back(opt.budget == BudgetKind::LatencyMs ? opt.latency_ms(c.layer, c.setting)
                                                           : double(c.bits));
    }
  switch (opt.budget) {
    case BudgetKind::BitsPerWeight:
      p.fixed_cost = 16.0 * double(table.model_parameters - searched);
      p.limit = opt.limit * double(table.model_parameters);
      break;
    case BudgetKind::Bytes:
      p.fixed_cost = 16.0 * double(table.model_parameters - searched);
      p.limit = 8.0 * opt.limit;
      break;
    case BudgetKind::LatencyMs:
      p.fixed_cost = opt.latency_fixed_ms;
      p.limit = opt.limit;
      break;
  }
  if (levels_out) *levels_out = sorted;
  return p;
}

const char* budget_prediction_key(BudgetKind kind) {
  switch (kind) {
    case BudgetKind::BitsPerWeight: return kBudgetKeys[0];
    case BudgetKind::Bytes: return kBudgetKeys[1];
    case BudgetKind::LatencyMs: return kBudgetKeys[2];
  }
  throw Error(kSource, "unknown budget kind");
}

Recipe mixed_precision_recipe(const SensitivityTable& table,
                              const std::vector<std::string>& settings, const std::string& name) {
  if (settings.size() != table.layers.size())
    throw Error(kSource, "one setting per layer of the table is needed");
  Recipe r;
  r.name = name;
  r.description = "mixed precision from a sensitivity scan";
  r.source = kSource;
  std::map<std::string, size_t> stage_of;  // algorithm + parameters -> stage
  for (size_t l = 0; l < settings.size(); ++l) {
    if (settings[l].empty()) continue;  // kept as it is
    const auto s = table.setting_index(settings[l]);
    if (!s) throw Error(kSource, "'" + settings[l] + "' is not a setting of the sensitivity table");
    // The cell recipe knows the group-size fallback; its stage is the one to reuse.
    const std::string& layer = table.layers[l];
    RecipeStage st =
        scan_cell_recipe(table.settings[*s], layer, table.layer_in_features[l]).stages.front();
    const std::string key = st.algorithm + st.params.dump();
    auto it = stage_of.find(key);
    if (it == stage_of.end()) {
      stage_of[key] = r.stages.size();
      r.stages.push_back(std::move(st));
    } else {
      r.stages[it->second].targets.push_back(layer);
    }
  }
  return r;
}

SearchMemory search_memory(const LlamaModel& base, const SensitivityTable& table,
                           const std::vector<std::string>& levels, const KlMeter& meter,
                           const MixedPrecisionOptions& opt) {
  SearchMemory m;
  m.banked = layer_local(table, levels);
  double searched = 0, bank = 0, largest = 0;
  for (size_t l = 0; l < table.layers.size(); ++l) {
    searched += double(table.layer_parameters[l]);
    for (const std::string& k : levels)
      if (const auto s = table.setting_index(k)) {
        const double bytes = double(table.at(l, *s).bits) / 8;
        m.bank_file += uint64_t(bytes);
        largest = std::max(largest, 1.5 * bytes);  // f32 scales in memory, f16 counted
        bank += 1.5 * bytes;
      }
  }
  const LlamaConfig& c = base.cfg;
  const double w = double(meter.window());
  const double forward = 4 * w * double(meter.vocab() + 4 * c.dim + c.hidden_dim) +
                         8 * double(c.n_layers) * w * double(c.kv_dim());
  const int64_t live = opt.evolution.max_parallel > 0 ? opt.evolution.max_parallel
                                                      : int64_t(tbb::info::default_concurrency());
  // The meter's reference logits are held the whole time: the rest of the budget is the
  // search's (a cap they alone fill leaves none, which is refused below).
  const uint64_t held = meter.reference_bytes();
  const uint64_t budget =
      opt.memory_budget == 0 ? 0 : opt.memory_budget > held ? opt.memory_budget - held : 1;
  if (!m.banked) {
    // Each candidate compressed whole: its layers' f32 copies and the decoded ones, and
    // calibration's hidden states.
    const double compress = 4 * searched + 12 * double(opt.compress.calib_windows) *
                                               double(opt.compress.calib_window) * double(c.dim);
    m.bank_file = 0;
    m.per_candidate = uint64_t(4 * searched + compress + forward);
    m.minimum = held + m.per_candidate;
    m.parallel = budget == 0 ? live
                             : std::clamp<int64_t>(int64_t(budget / m.per_candidate), 1, live);
    return m;
  }
  // Each forward holds the layer it is using (it may have left the cache) and the tile
  // scratch of its product (about 1 MiB per thread).
  m.per_candidate = uint64_t(forward + largest) + (uint64_t(4) << 20);
  m.minimum = held + m.per_candidate + uint64_t(largest);  // and a cache of one layer
  if (budget == 0) {
    m.bank = uint64_t(bank);
    m.parallel = live;
    return m;
  }
  // Candidates first, as many as fit beside a cache of half the budget or the whole bank,
  // whichever is smaller; the cache gets the rest.
  const uint64_t keep = std::min(uint64_t(bank), budget / 2);
  const uint64_t room = budget > keep ? budget - keep : 0;
  m.parallel = std::clamp<int64_t>(int64_t(room / m.per_candidate), 1, live);
  const uint64_t used = uint64_t(m.parallel) * m.per_candidate;
  m.bank = std::max(std::min(uint64_t(bank), budget > used ? budget - used : 0), uint64_t(largest));
  return m;
}

MixedPrecisionResult search_mixed_precision(const LlamaModel& base, const SensitivityTable& table,
                                            const KlMeter& meter,
                                            std::span<const int32_t> calibration_tokens,
                                            const MixedPrecisionOptions& opt,
                                            const ProgressFn& progress, const CancelToken* cancel) {
  MixedPrecisionResult out;
  out.layers = table.layers;
  const LevelProblem p = mixed_precision_problem(table, opt, &out.levels);
  const GreedyLevels g = greedy_levels(p);
  out.feasible = g.feasible;
  auto solution = [&](const std::vector<int>& choice, const std::string& name) {
    MixedPrecisionSolution s;
    for (int k : choice) s.settings.push_back(out.levels[size_t(k)]);
    s.recipe = mixed_precision_recipe(table, s.settings, name);
    s.predicted_kl = p.total_loss(choice);
    s.budget_used = p.total_cost(choice);
    return s;
  };
  out.greedy = solution(g.choice, "mixed-greedy");
  if (!g.feasible) {
    const double need = opt.budget == BudgetKind::BitsPerWeight
                            ? p.total_cost(g.choice) / double(table.model_parameters)
                        : opt.budget == BudgetKind::Bytes ? p.total_cost(g.choice) / 8
                                                          : p.total_cost(g.choice);
    const char* unit = opt.budget == BudgetKind::BitsPerWeight ? " bits per weight"
                       : opt.budget == BudgetKind::Bytes       ? " bytes"
                                                               : " ms per token";
    out.message = "the budget cannot be met: every layer at " + out.levels.back() +
                  " still needs " + std::to_string(need) + unit + " (limit " +
                  std::to_string(opt.limit) + ")";
    out.evolved = out.greedy;
    return out;
  }
  out.memory = search_memory(base, table, out.levels, meter, opt);
  // Even without evolution the greedy answer is measured like one candidate.
  if (opt.memory_budget && out.memory.minimum > opt.memory_budget)
    throw Error(kSource, "the search needs about " + human_bytes(out.memory.minimum) + " (" +
                             human_bytes(out.memory.per_candidate) + " per candidate" +
                             (out.memory.banked ? " and a cache of one compressed layer"
                                                : ", each compressed whole") +
                             ", and the reference logits) and may use " +
                             human_bytes(opt.memory_budget));

  // One bar over the phases (it used to run 0→100 % for the bank and again for the
  // evolution): bank, the greedy answer's measurement, evolution, in rough proportion.
  const bool banked = out.memory.banked;
  const double bank_end = banked ? (opt.evolve ? 0.4 : 0.8) : 0.0;
  const double greedy_end = opt.evolve ? bank_end + 0.05 : 1.0;
  auto phase = [&](double lo, double hi, double f, const std::string& item, const std::string& what) {
    report(progress, "search", item, lo + (hi - lo) * std::clamp(f, 0.0, 1.0), what);
  };

  // Layer-local levels: a bank of every layer at every level (or, without evolution, of the
  // greedy answer's layers only); candidates are assembled from it.
  std::unique_ptr<LayerBank> bank;
  if (out.memory.banked) {
    bank = std::make_unique<LayerBank>(table.layers, out.levels.size(), opt.compress.scratch_dir,
                                       out.memory.bank);
    const size_t jobs = opt.evolve ? out.levels.size() : 1;
    for (size_t k = 0; k < jobs; ++k) {
      const std::string what = opt.evolve ? "compressing every layer at " + out.levels[k]
                                          : std::string("compressing the greedy answer");
      auto relay = [&](const ProgressEvent& e) {
        phase(0.0, bank_end, (double(k) + e.fraction) / double(jobs), e.item, what);
      };
      const std::vector<int> level(table.layers.size(), int(k));
      bank->add(base, opt.evolve ? uniform_recipe(table, out.levels[k]) : out.greedy.recipe,
                opt.evolve ? std::span<const int>(level) : std::span<const int>(g.choice),
                opt.compress, relay, cancel);
    }
  }
  auto measure = [&](const std::vector<int>& choice, std::span<const int64_t> windows) {
    if (!bank) {
      std::vector<std::string> settings;
      for (int k : choice) settings.push_back(out.levels[size_t(k)]);
      const Recipe r = mixed_precision_recipe(table, settings, "candidate");
      return meter.measure(compress_llama(base, r, calibration_tokens, opt.compress, {}, cancel).model,
                           windows, cancel);
    }
    const LlamaLinearFn linears = bank->linears(base, choice);
    return meter.measure(base, windows, cancel, &linears);
  };
  // The truth for a solution: compress_llama's accounting (the bank's is the same sum of
  // the same layers) and the measured KL.
  auto verify = [&](MixedPrecisionSolution& s, const std::vector<int>& choice) {
    if (bank) {
      s.storage_bits = bank->storage_bits(choice, table.model_parameters);
      s.bits_per_weight = double(s.storage_bits) / double(table.model_parameters);
    } else {
      const CompressionResult c =
          compress_llama(base, s.recipe, calibration_tokens, opt.compress, {}, cancel);
      s.storage_bits = c.storage_bits;
      s.bits_per_weight = c.bits_per_weight();
    }
    const KlMeasurement m = measure(choice, {});
    s.measured_kl = m.kl;
    s.measured_perplexity = m.perplexity;
    if (opt.budget == BudgetKind::BitsPerWeight) s.budget_used = s.bits_per_weight;
    if (opt.budget == BudgetKind::Bytes) s.budget_used = double(s.storage_bits / 8);
  };
  phase(bank_end, greedy_end, 0, "", "measuring the greedy answer");
  verify(out.greedy, g.choice);
  phase(bank_end, greedy_end, 1, "", "measuring the greedy answer");
  if (!opt.evolve) {
    out.evolved = out.greedy;
    return out;
  }
  EvolutionOptions evolution = opt.evolution;
  evolution.max_parallel = int(out.memory.parallel);
  const LevelFitnessFn fitness = [&](const std::vector<int>& choice,
                                     std::span<const int64_t> windows) {
    return measure(choice, windows).kl;
  };
  auto relay = [&](const ProgressEvent& e) { phase(greedy_end, 1.0, e.fraction, e.item, e.message); };
  out.evolution =
      evolve_levels(p, g.choice, fitness, meter.window_count(), evolution, relay, cancel);
  out.evolved = solution(out.evolution.choice, "mixed-evolved");
  verify(out.evolved, out.evolution.choice);
  return out;
}

}  // namespace mcw
