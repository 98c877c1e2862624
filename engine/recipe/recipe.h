// Compression recipes: an ordered list of stages, each an algorithm with parameters,
// `targets` (globs, or regexes written "re:...") on tensor names and `ignore` patterns.
// Written in YAML (what llm-compressor/SparseML users know) or JSON. Every error names the
// file, the line, the key and what was expected, and is raised before any work starts.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mcw {

// A stage's targets when the recipe names none: every linear weight inside the decoder
// blocks (in an ONNX graph: every layer, onnx_layers.h).
inline constexpr const char* kDefaultStageTarget = "model.layers.*_proj.weight";

struct RecipeStage {
  std::string algorithm;
  nlohmann::json params = nlohmann::json::object();  // validated, defaults filled in
  std::vector<std::string> targets, ignore;
  int line = 0;  // 1-based line of the stage in its file (0 when built in code)
};

struct Recipe {
  std::string name, description, source;  // source: the file it came from
  std::vector<RecipeStage> stages;
  nlohmann::json calibration = nlohmann::json::object();  // {"windows": N, "window": L}
  // Recovery fine-tuning after the stages (engine/train/recovery.h: keys, defaults filled
  // in); empty: none.
  nlohmann::json recovery = nlohmann::json::object();
  // Static per-tensor quantisation of the compressed layers' inputs, calibrated after the
  // stages (activation_params(): bits, symmetric); empty: none. ONNX models only.
  nlohmann::json activations = nlohmann::json::object();
  // What was predicted for this recipe before it ran (engine/search/recipe_prediction.h):
  // numbers under kPredictionKeys and kBudgetKeys, "measure" (the scan's) and "stages" (recipe_stages_digest
  // of the stages it was predicted for; a run records the figures only while it matches).
  nlohmann::json prediction = nlohmann::json::object();
};
inline constexpr const char* kPredictionKeys[] = {
    "kl",         "kl_low",          "kl_high",         "perplexity", "perplexity_low",
    "perplexity_high", "bits_per_weight", "size_bytes", "latency_ms", "score"};
// The budget a search chose the recipe under (mcw search writes one of them beside its
// prediction): the studio draws it as a line on the trade-off plot's matching cost axis.
inline constexpr const char* kBudgetKeys[] = {"budget_bits_per_weight", "budget_size_bytes",
                                              "budget_latency_ms"};
// 12 hex digits of SHA-256 over the stages (and a recovery section) as recipe_to_yaml writes
// them (name, description, calibration and prediction left out): what a prediction is tied to.
std::string recipe_stages_digest(const Recipe& r);

Recipe parse_recipe(const std::string& text, const std::string& source);
Recipe load_recipe(const std::string& path);
std::string recipe_to_yaml(const Recipe& r);

// Which of `names` a stage applies to: matching a target and no ignore pattern.
bool pattern_matches(const std::string& pattern, const std::string& name);
std::vector<std::string> stage_tensors(const RecipeStage& s, const std::vector<std::string>& names);
// Throws mcw::Error(source, "line N: stage 2 (gptq): target '...' matches no tensor") when a
// target matches nothing in the model.
void check_targets(const Recipe& r, const std::vector<std::string>& names);

// The parameter schema of an algorithm's recipe stage (engine/compress/algorithm.h holds
// each algorithm's): the parser checks a stage's keys and fills in defaults from it, the
// recipe editor builds its form from it.
struct ParamSpec {
  std::string key, type;  // "int", "number", "bool", "string", "pattern"
  nlohmann::json fallback;  // default value; null = required
  std::vector<nlohmann::json> allowed;  // empty: any value of the type
  double min = 0, max = 0;              // range for numbers when min < max
  std::string help;
};
// The keys of a recipe's `activations` section.
const std::vector<ParamSpec>& activation_params();

// What an algorithm reads from the calibration text, for a stage's parameters.
enum class CalibrationNeed {
  None,         // the weights alone
  InputNorms,   // per input channel Σx² and max|x| (LayerStats without XᵀX)
  Gram,         // XᵀX too (the Hessian of the layer's reconstruction loss)
  OwnPass,      // statistics of its own (SmoothQuant's maxima, structured moments)
};

}  // namespace mcw
