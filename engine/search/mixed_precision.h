// Mixed precision from a sensitivity scan: one quantization level per linear layer (the
// scan's w8/w4/w3/w2 columns, say) under a budget on bits per weight, model bytes or decode
// latency. A greedy pass on the scan's table (each layer's KL measured alone, assumed to
// add up) gives the start; an evolutionary search in the manner of EvoPress then improves
// it on the KL of the actually compressed candidate models. The answer is a recipe that
// compress_llama runs and recipe_to_yaml saves.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/compress/compress_llama.h"
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"
#include "engine/recipe/recipe.h"
#include "engine/search/kl_meter.h"
#include "engine/search/level_search.h"
#include "engine/search/sensitivity_scan.h"

namespace mcw {

enum class BudgetKind {
  BitsPerWeight,  // compress_llama's bits_per_weight(): compressed linears + the rest at 16
  Bytes,          // storage bits / 8 of the same accounting
  LatencyMs,      // decode ms per token: fixed part + Σ per-layer costs
};

// The key of a recipe's prediction that records a search's budget (recipe.h kBudgetKeys).
const char* budget_prediction_key(BudgetKind kind);

// Per-(layer, setting) cost in milliseconds of one decode step through that layer. A table
// measured on this machine (measure_layer_latency) or one from elsewhere.
using LayerCostFn = std::function<double(const std::string& layer, const std::string& setting)>;

struct MixedPrecisionOptions {
  // Settings of the table a layer may take, in any order (sorted by storage, most bits
  // first). Empty: every quantization setting of the table.
  std::vector<std::string> levels;
  BudgetKind budget = BudgetKind::BitsPerWeight;
  double limit = 4.5;           // bits per weight, bytes or milliseconds
  LayerCostFn latency_ms;       // for LatencyMs
  double latency_fixed_ms = 0;  // for LatencyMs: everything but the searched layers
  bool evolve = true;
  EvolutionOptions evolution;
  // Bytes the search may hold (0: no cap). Candidates are measured at once only as far as
  // they fit beside the bank of compressed layers (SearchMemory); a search that cannot fit
  // even one candidate is refused before it starts.
  uint64_t memory_budget = 0;
  CompressOptions compress;  // for levels that need calibration statistics
};

struct MixedPrecisionSolution {
  std::vector<std::string> settings;  // per table layer
  Recipe recipe;
  double predicted_kl = 0;  // Σ of the scan's KL of each layer at its level
  double measured_kl = 0;   // of the compressed model on the measurement windows
  double measured_perplexity = 0;
  uint64_t storage_bits = 0;  // compress_llama's accounting of the whole model
  double bits_per_weight = 0;
  double budget_used = 0;  // in the budget's unit
};

// What the search holds. Layer-local levels (no calibration): a cache of compressed layers
// read back from the LayerBank's files (`bank`, all of them when there is no budget;
// `bank_file` bytes on disk), and per candidate measured at once one window's forward
// (logits, activations, KV cache) and the layer it is using. Levels that need calibration:
// no bank; each candidate is compressed whole, so per candidate its searched layers in f32,
// the decoded ones and calibration's hidden states. The KL meter's reference logits come
// off the budget first. `minimum`: below it (logits included) the search is refused
// before it starts.
struct SearchMemory {
  bool banked = true;
  uint64_t bank = 0, bank_file = 0, per_candidate = 0, minimum = 0;
  int64_t parallel = 1;  // candidates measured at once under the budget
};
SearchMemory search_memory(const LlamaModel& base, const SensitivityTable& table,
                           const std::vector<std::string>& levels, const KlMeter& meter,
                           const MixedPrecisionOptions& opt);

struct MixedPrecisionResult {
  bool feasible = false;  // false: even every layer at the lowest level exceeds the budget
  std::string message;    // why not, in one line
  std::vector<std::string> levels;  // the levels searched, most bits first
  std::vector<std::string> layers;  // the table's rows, the order of each solution's settings
  MixedPrecisionSolution greedy, evolved;  // evolved == greedy when evolution is off
  EvolutionResult evolution;
  SearchMemory memory;  // of the search (banked levels, or when the evolution ran)
};

// The problem the search solves: rows of `table`, the chosen levels as columns (sorted
// most bits first), costs in the budget's unit (bits for both size budgets, so sums are
// exact integers), losses = the scan's KL. Throws mcw::Error for an unknown level, a level
// the table lacks, or a latency budget without costs.
LevelProblem mixed_precision_problem(const SensitivityTable& table,
                                     const MixedPrecisionOptions& opt,
                                     std::vector<std::string>* levels = nullptr);

// One stage per distinct (algorithm, parameters), targets the exact layer names; an empty
// setting keeps its layer as it is.
Recipe mixed_precision_recipe(const SensitivityTable& table,
                              const std::vector<std::string>& settings, const std::string& name);

// Runs greedy, then (when feasible and opt.evolve) the evolutionary search, whose fitness
// is `meter`'s KL of each candidate: assembled from a LayerBank (in
// opt.compress.scratch_dir) for layer-local levels, compressed by compress_llama otherwise.
// A solution's measured KL and size are those of the model compress_llama makes of its recipe. `base` must be the model
// the table was scanned on. Throws mcw::Cancelled when cancelled.
MixedPrecisionResult search_mixed_precision(const LlamaModel& base, const SensitivityTable& table,
                                            const KlMeter& meter,
                                            std::span<const int32_t> calibration_tokens,
                                            const MixedPrecisionOptions& opt,
                                            const ProgressFn& progress = {},
                                            const CancelToken* cancel = nullptr);

}  // namespace mcw
