// What a recipe with per-layer settings would give, before it runs: predicted from a
// sensitivity scan (each layer's cell, assumed to add up, as the mixed-precision search's
// greedy pass assumes), calibrated on the project's own finished runs. Size and bits per
// weight are exact (the scan records each cell's storage bits in compress_llama's
// accounting); KL is the sum of the cells; perplexity comes from a fit of the project's
// runs; latency from per-layer decode times measured per layout (layer_latency.h).
//
// A recipe carries the prediction it was made with (Recipe::prediction, tied to its
// stages by a digest), so a run of it records the predicted figures beside the measured
// ones, whoever runs it, and the predictor's error shows as runs accumulate.
#pragma once
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "engine/model/llama_model.h"
#include "engine/recipe/recipe.h"
#include "engine/runs/run_store.h"
#include "engine/search/sensitivity_scan.h"

namespace mcw {

struct LayerLatencyTable;

// The scan settings a recipe amounts to: one per distinct (algorithm, parameters) of its
// stages, named as mcw sensitivity names them ("w4", "w3g64", "s50") when they are one of
// those, else "<algorithm> key=value ..." with the parameters that differ from the
// algorithm's defaults. A stage whose layers all match an earlier setting's cells (a
// mixed-precision recipe's group-size fallbacks) adds none. Throws mcw::Error naming the
// recipe's file and the stage for a stage that does not compress single linears (a
// structured or whole-model stage), or a layer that two stages compress.
std::vector<ScanSetting> recipe_scan_settings(const Recipe& recipe, const LlamaModel& model);

// The setting a label names: scan_setting_from_name's names ("w4", "w3g64", "s50"), or
// recipe_scan_settings' "<algorithm> key=value ..." (values as JSON where they parse as
// JSON, else strings; parameters not named take the algorithm's defaults). Throws
// mcw::Error for an unknown algorithm or parameter, or a malformed label.
ScanSetting scan_setting_from_label(const std::string& label);

// Per row of `table`, the column whose cell recipe is what `recipe` does to that layer, or
// -1 where the recipe leaves the layer as it is. Throws mcw::Error naming the recipe, the
// layer and its stage when no column matches, or when the recipe compresses a linear the
// table has no row for.
std::vector<int> recipe_assignment(const SensitivityTable& table, const Recipe& recipe);

// What the project's finished runs say about the predictor. Runs of the same model only.
struct PredictionCalibration {
  // Runs that recorded a prediction (predicted_kl) and measured a KL: the spread of
  // log(measured / predicted) gives the KL band.
  int64_t kl_runs = 0;
  double log_ratio_mean = 0, log_ratio_sd = 0;
  // log(perplexity / baseline perplexity) = slope · KL, least squares through the origin
  // on every finished compressed run with both; residual_sd of that fit.
  double baseline_perplexity = 0;  // 0: no finished baseline run
  int64_t perplexity_runs = 0;
  double perplexity_slope = 0, perplexity_residual_sd = 0;
};
PredictionCalibration calibrate_prediction(std::span<const RunRecord> runs,
                                           const std::string& model_fingerprint);

struct RecipePrediction {
  static constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();
  SensitivityMeasure measure = SensitivityMeasure::Kl;
  std::vector<int> assignment;  // per table row, as recipe_assignment
  int64_t compressed_layers = 0;
  // Σ of the assigned cells' values: KL in nats/token for the kl measure, else the sum of
  // relative output errors (a ranking, not a KL).
  double score = 0;
  // kl measure only: the score, and its band from the calibration (unknown with fewer
  // than two calibrated runs).
  double kl = kUnknown, kl_low = kUnknown, kl_high = kUnknown;
  // From the KL and its band through the perplexity fit (unknown without a baseline run
  // and a fitted slope).
  double perplexity = kUnknown, perplexity_low = kUnknown, perplexity_high = kUnknown;
  uint64_t storage_bits = 0;  // compressed linears + everything else at 16 bits
  uint64_t parameters = 0;
  double bits_per_weight = 0;
  double latency_ms = kUnknown;  // decode ms/token, with a latency table
};

// Throws mcw::Error when the assignment does not fit the table.
RecipePrediction predict_assignment(const SensitivityTable& table, std::span<const int> assignment,
                                    const PredictionCalibration& calibration = {},
                                    const LayerLatencyTable* latency = nullptr);

// The prediction as a recipe carries it (Recipe::prediction): the figures that are known,
// the measure, and the digest of `recipe`'s stages.
nlohmann::json prediction_json(const RecipePrediction& p, const Recipe& recipe);

// The per-layer recipe of an assignment over `table` (mixed_precision_recipe, with -1 as
// "keep"), carrying `p` as its prediction.
Recipe assignment_recipe(const SensitivityTable& table, std::span<const int> assignment,
                         const std::string& name, const RecipePrediction* p = nullptr);

}  // namespace mcw
