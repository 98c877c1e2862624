// The parameter schema of every algorithm a recipe can name. The engine's compressors
// read exactly these keys; the recipe editor builds its forms from this table.
#include "engine/recipe/recipe.h"

namespace mcw {

using J = nlohmann::json;

static ParamSpec bits(std::vector<J> allowed, int def) {
  return {"bits", "int", def, std::move(allowed), 0, 0, "bits per weight"};
}
static ParamSpec group(int def) {
  return {"group_size", "int", def, {0, 32, 64, 128, -1}, 0, 0,
          "columns per scale: 32/64/128, 0 = per output channel, -1 = per tensor"};
}
static ParamSpec flag(std::string key, bool def, std::string help) {
  return {std::move(key), "bool", def, {}, 0, 0, std::move(help)};
}
static ParamSpec number(std::string key, double def, double lo, double hi, std::string help) {
  return {std::move(key), "number", def, {}, lo, hi, std::move(help)};
}
static ParamSpec integer(std::string key, int def, double lo, double hi, std::string help) {
  return {std::move(key), "int", def, {}, lo, hi, std::move(help)};
}
static ParamSpec sparsity() {
  return number("sparsity", 0.5, 0.0, 0.99, "fraction of weights removed (ignored with pattern)");
}
static ParamSpec scope(const char* def) {
  return {"scope", "string", def, {"layer", "row"}, 0, 0,
          "compare scores across the whole layer, or within each output row"};
}
static ParamSpec structured_inputs() {
  return {"inputs", "string", "auto", {"auto", "dense", "compressed"}, 0, 0,
          "statistics from the model before the stage (dense) or from the blocks already "
          "pruned; auto: as the score's reference (flap dense, wanda compressed)"};
}
static ParamSpec pattern() {
  return {"pattern", "string", "unstructured", {"unstructured", "2:4", "4:8"}, 0, 0,
          "unstructured, or N:M semi-structured"};
}

static CalibrationNeed needs_nothing(const J&) { return CalibrationNeed::None; }
static CalibrationNeed needs_norms(const J&) { return CalibrationNeed::InputNorms; }
static CalibrationNeed needs_gram(const J&) { return CalibrationNeed::Gram; }
static CalibrationNeed needs_own_pass(const J&) { return CalibrationNeed::OwnPass; }
static CalibrationNeed svd_needs(const J& p) {  // whitening reads XᵀX
  return p.value("activation_aware", false) ? CalibrationNeed::Gram : CalibrationNeed::None;
}

// AWQ needs XᵀX for GPTQ after it and for the output error each layer records; its search
// keeps whole calibration windows of its own.
const std::vector<AlgorithmSpec>& algorithm_specs() {
  static const std::vector<AlgorithmSpec> specs = {
      {"rtn", "quantize", "round-to-nearest quantisation",
       {bits({2, 3, 4, 8}, 4), group(128), flag("symmetric", false, "symmetric (no zero point)"),
        flag("mse_clip", false, "search the clipping range that minimises the error")},
       needs_nothing},
      {"gptq", "quantize", "GPTQ: quantise column by column, correcting with the Hessian",
       {bits({2, 3, 4, 8}, 4), group(128), flag("symmetric", false, "symmetric (no zero point)"),
        flag("act_order", false, "quantise columns in order of decreasing Hessian diagonal"),
        flag("static_groups", false, "fit every group's grid on the original weights first"),
        number("damp", 0.01, 0.0, 1.0, "dampening, fraction of the mean Hessian diagonal"),
        integer("block_size", 128, 1, 4096, "columns per lazy block update"),
        number("outlier_threshold", 0.0, 0.0, 1e6,
               "SpQR outliers: keep in f16 the weights whose scaled error exceeds this times the "
               "layer's mean (0.2 in SpQR's runs; 0: off)"),
        number("outlier_fraction", 0.0, 0.0, 0.1,
               "SpQR outliers with the threshold set for about this share of weights")},
       needs_gram},
      {"awq", "quantize", "AWQ: activation-aware channel scaling, then round-to-nearest",
       {bits({2, 3, 4, 8}, 4), group(128), flag("symmetric", false, "symmetric (no zero point)"),
        integer("grid", 20, 2, 100, "points of the scale-exponent search (alpha = k/grid)"),
        flag("clip_search", true, "search the clipping range after scaling (not q/k)"),
        integer("search_tokens", 0, 0, 1 << 24,
                "calibration tokens (whole windows) the scale search runs on; 0: all"),
        {"inputs", "string", "dense", {"dense", "compressed"}, 0, 0,
         "statistics from the uncompressed model (AWQ's reference) or from the compressed "
         "layers before (GPTQ's sequential order)"},
        {"quantizer", "string", "rtn", {"rtn", "gptq"}, 0, 0,
         "quantise the scaled weights by round-to-nearest, or by GPTQ (act-order, damp 0.01)"}},
       needs_gram},
      {"smoothquant", "quantize", "SmoothQuant W8A8: migrate activation outliers into weights",
       {number("alpha", 0.5, 0.0, 1.0, "migration strength")},
       needs_own_pass},
      {"kmeans", "quantize", "k-means codebook per output channel or group, Hessian-weighted",
       {bits({2, 3, 4}, 3), integer("iterations", 25, 1, 1000, "Lloyd iterations"),
        {"group_size", "int", 0, {0, 32, 64, 128}, 0, 0,
         "columns per codebook: 32/64/128, 0 = one codebook per output channel"}},
       needs_norms},
      {"magnitude", "prune", "remove the smallest weights", {sparsity(), pattern(), scope("layer")},
       needs_nothing},
      {"wanda", "prune", "Wanda: remove by |weight| x input norm, per output row",
       {sparsity(), pattern(), scope("row")},
       needs_norms},
      {"sparsegpt", "prune", "SparseGPT: OBS pruning with Hessian reconstruction",
       {sparsity(), pattern(),
        number("damp", 0.01, 0.0, 1.0, "dampening, fraction of the mean Hessian diagonal"),
        integer("block_size", 128, 1, 4096, "columns per block"),
        {"quantize_bits", "int", 0, {0, 2, 3, 4, 8}, 0, 0, "quantise jointly to this many bits (0: off)"}},
       needs_gram},
      {"svd", "low-rank", "truncated SVD to a rank or an energy fraction",
       {integer("rank", 0, 0, 65536, "rank to keep (0: use energy)"),
        number("energy", 0.9, 0.01, 1.0, "share of squared singular values to keep"),
        flag("activation_aware", false, "whiten with the calibration Gram matrix first")},
       svd_needs},
      {"heads", "structured", "remove attention heads (FLAP importance, bias compensation)",
       {number("fraction", 0.25, 0.0, 0.95, "share of heads removed per layer"),
        {"score", "string", "flap", {"flap", "wanda"}, 0, 0, "importance score"},
        structured_inputs(),
        flag("square_scores", true, "sum the squares of a head's channel scores (FLAP's code)")},
       needs_own_pass},
      {"channels", "structured", "remove MLP channels (FLAP importance, bias compensation)",
       {number("fraction", 0.25, 0.0, 0.95, "share of intermediate channels removed"),
        {"score", "string", "flap", {"flap", "wanda"}, 0, 0, "importance score"},
        structured_inputs()},
       needs_own_pass},
  };
  return specs;
}

const AlgorithmSpec* find_algorithm(const std::string& name) {
  for (const AlgorithmSpec& a : algorithm_specs())
    if (a.name == name) return &a;
  return nullptr;
}

CalibrationNeed calibration_need(const std::string& algorithm, const J& params) {
  const AlgorithmSpec* a = find_algorithm(algorithm);
  return a ? a->needs(params) : CalibrationNeed::None;
}

}  // namespace mcw
