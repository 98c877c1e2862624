#include "engine/search/mixed_precision.h"

#include <tbb/info.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "engine/compress/calibrate.h"
#include "engine/core/error.h"
#include "engine/core/memory_usage.h"

namespace mcw {

namespace {

const char* const kSource = "mixed-precision search";

// Builds the compressed model of a choice (level index per table layer).
class CandidateBuilder {
 public:
  CandidateBuilder(const LlamaModel& base, const SensitivityTable& table,
                   const std::vector<std::string>& levels, std::span<const int32_t> calib,
                   const CompressOptions& co, const CancelToken* cancel)
      : base_(base), table_(table), levels_(levels), calib_(calib), co_(co) {
    // Layer-local levels (no calibration) compress each layer the same whatever the others
    // get: compress every layer at each level once and assemble candidates from those.
    for (const std::string& l : levels) {
      const Recipe r =
          mixed_precision_recipe(table, std::vector<std::string>(table.layers.size(), l), l);
      if (recipe_needs_calibration(r)) return;  // sequential calibration: compress each candidate
    }
    bank_.resize(table.layers.size() * levels.size());
    for (size_t k = 0; k < levels.size(); ++k) {
      const Recipe r = mixed_precision_recipe(
          table, std::vector<std::string>(table.layers.size(), levels[k]), levels[k]);
      CompressionResult c = compress_llama(base, r, calib, co, {}, cancel);
      for (CompressedLayer& cl : c.layers)
        if (auto i = table.layer_index(cl.tensor.name))
          bank_[*i * levels.size() + k] = std::move(cl.tensor);
    }
  }

  LlamaModel build(const std::vector<int>& choice, const CancelToken* cancel) const {
    if (bank_.empty()) {
      std::vector<std::string> s;
      for (int k : choice) s.push_back(levels_[size_t(k)]);
      return compress_llama(base_, mixed_precision_recipe(table_, s, "candidate"), calib_, co_, {},
                            cancel)
          .model;
    }
    LlamaModel m = base_;  // shares the unchanged tensors' bytes
    for (size_t l = 0; l < choice.size(); ++l) {
      Tensor w = bank_[l * levels_.size() + size_t(choice[l])].dequantize();
      w.set_name(table_.layers[l]);
      *find_weight(m, table_.layers[l]) = std::move(w);
    }
    return m;
  }

 private:
  const LlamaModel& base_;
  const SensitivityTable& table_;
  const std::vector<std::string>& levels_;
  std::span<const int32_t> calib_;
  CompressOptions co_;
  std::vector<CompressedTensor> bank_;  // [layer * levels + level]
};

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
  bool banked = true;  // as CandidateBuilder decides
  for (const std::string& l : levels)
    banked &= !recipe_needs_calibration(
        mixed_precision_recipe(table, std::vector<std::string>(table.layers.size(), l), l));
  double searched = 0, bank = 0;
  for (size_t l = 0; l < table.layers.size(); ++l) {
    searched += double(table.layer_parameters[l]);
    for (const std::string& k : levels)
      if (const auto s = table.setting_index(k))
        bank += 1.5 * double(table.at(l, *s).bits) / 8;  // f32 scales in memory, f16 counted
  }
  const LlamaConfig& c = base.cfg;
  const double w = double(meter.window());
  const double forward = 4 * w * double(meter.vocab() + 4 * c.dim + c.hidden_dim) +
                         8 * double(c.n_layers) * w * double(c.kv_dim());
  // Without a bank each candidate is compressed whole: its layers' f32 copies and the
  // decoded ones, and calibration's hidden states.
  const double compress = banked ? 0 : 4 * searched + 12 * double(opt.compress.calib_windows) *
                                                          double(opt.compress.calib_window) * double(c.dim);
  m.bank = banked ? uint64_t(bank) : 0;
  m.per_candidate = uint64_t(4 * searched + compress + forward);
  const int64_t live = opt.evolution.max_parallel > 0 ? opt.evolution.max_parallel
                                                      : int64_t(tbb::info::default_concurrency());
  const uint64_t room = opt.memory_budget > m.bank ? opt.memory_budget - m.bank : 0;
  m.parallel = opt.memory_budget == 0
                   ? live
                   : std::clamp<int64_t>(int64_t(room / std::max<uint64_t>(m.per_candidate, 1)), 1, live);
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
  // The truth for a solution: compress_llama's own accounting and the measured KL.
  auto verify = [&](MixedPrecisionSolution& s) {
    const CompressionResult c =
        compress_llama(base, s.recipe, calibration_tokens, opt.compress, {}, cancel);
    const KlMeasurement m = meter.measure(c.model, {}, cancel);
    s.measured_kl = m.kl;
    s.measured_perplexity = m.perplexity;
    s.storage_bits = c.storage_bits;
    s.bits_per_weight = c.bits_per_weight();
    if (opt.budget == BudgetKind::BitsPerWeight) s.budget_used = c.bits_per_weight();
    if (opt.budget == BudgetKind::Bytes) s.budget_used = double(c.storage_bits / 8);
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
  report(progress, "search", "", 0, "greedy");
  verify(out.greedy);
  if (!opt.evolve) {
    out.evolved = out.greedy;
    return out;
  }
  out.memory = search_memory(base, table, out.levels, meter, opt);
  if (opt.memory_budget && out.memory.bank + out.memory.per_candidate > opt.memory_budget)
    throw Error(kSource, "the evolutionary search needs about " + human_bytes(out.memory.bank + out.memory.per_candidate) +
                             " (" + human_bytes(out.memory.bank) + " of compressed layers, " +
                             human_bytes(out.memory.per_candidate) + " per candidate) and may use " +
                             human_bytes(opt.memory_budget) + "; without evolution the greedy answer needs less");
  EvolutionOptions evolution = opt.evolution;
  evolution.max_parallel = int(out.memory.parallel);
  report(progress, "search", "", 0, "preparing candidates");
  const CandidateBuilder builder(base, table, out.levels, calibration_tokens, opt.compress, cancel);
  const LevelFitnessFn fitness = [&](const std::vector<int>& choice,
                                     std::span<const int64_t> windows) {
    return meter.measure(builder.build(choice, cancel), windows, cancel).kl;
  };
  auto relay = [&](const ProgressEvent& e) {
    report(progress, "search", e.item, e.fraction, e.message);
  };
  out.evolution =
      evolve_levels(p, g.choice, fitness, meter.window_count(), evolution, relay, cancel);
  out.evolved = solution(out.evolution.choice, "mixed-evolved");
  verify(out.evolved);
  return out;
}

}  // namespace mcw
