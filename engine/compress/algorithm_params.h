// Building blocks of the algorithm entries (algorithm.h): the parameter schemas several
// algorithms share, the calibration needs, and reading parameters in cost models (which
// also see stages built in code, so a missing key falls back rather than throws).
#pragma once
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/compress/algorithm.h"
#include "engine/compress/sparsity.h"

namespace mcw::algo {

using J = nlohmann::json;

inline ParamSpec bits(std::vector<J> allowed, int def) {
  return {"bits", "int", def, std::move(allowed), 0, 0, "bits per weight"};
}
// per_tensor: whether -1 (one scale for the whole tensor) is offered.
inline ParamSpec group(int def, bool per_tensor = true) {
  std::vector<J> allowed = {0, 32, 64, 128};
  if (per_tensor) allowed.push_back(-1);
  return {"group_size",
          "int",
          def,
          std::move(allowed),
          0,
          0,
          std::string("columns per scale: 32/64/128, 0 = per output channel") +
              (per_tensor ? ", -1 = per tensor" : "")};
}
inline ParamSpec flag(std::string key, bool def, std::string help) {
  return {std::move(key), "bool", def, {}, 0, 0, std::move(help)};
}
inline ParamSpec number(std::string key, double def, double lo, double hi, std::string help) {
  return {std::move(key), "number", def, {}, lo, hi, std::move(help)};
}
inline ParamSpec integer(std::string key, int def, double lo, double hi, std::string help) {
  return {std::move(key), "int", def, {}, lo, hi, std::move(help)};
}
inline ParamSpec choice(std::string key, const char* def, std::vector<J> allowed,
                        std::string help) {
  return {std::move(key), "string", def, std::move(allowed), 0, 0, std::move(help)};
}
inline ParamSpec sparsity() {
  return number("sparsity", 0.5, 0.0, 0.99, "fraction of weights removed (ignored with pattern)");
}
inline ParamSpec pattern() {
  return choice("pattern", "unstructured", {"unstructured", "2:4", "4:8"},
                "unstructured, or N:M semi-structured");
}
inline ParamSpec scope(const char* def) {
  return choice("scope", def, {"layer", "row"},
                "compare scores across the whole layer, or within each output row");
}

inline CalibrationNeed needs_nothing(const J&) { return CalibrationNeed::None; }
inline CalibrationNeed needs_norms(const J&) { return CalibrationNeed::InputNorms; }
inline CalibrationNeed needs_gram(const J&) { return CalibrationNeed::Gram; }
inline CalibrationNeed needs_own_pass(const J&) { return CalibrationNeed::OwnPass; }

template <class T>
T param(const J& p, const char* key, T fallback) {
  const auto it = p.find(key);
  if (it == p.end()) return fallback;
  if constexpr (std::is_same_v<T, bool>)
    return it->is_boolean() ? it->get<bool>() : fallback;
  else if constexpr (std::is_arithmetic_v<T>)
    return it->is_number() ? it->get<T>() : fallback;
  else
    return it->is_string() ? it->get<T>() : fallback;
}

// Affine scale groups per row: group_size 0 = one per row, -1 = per tensor (counted as one
// per row, an upper bound), else cols / group_size.
inline double affine_groups(const J& p, double cols) {
  const int g = param(p, "group_size", 0);
  return g > 0 ? std::ceil(cols / g) : 1;
}
// Codes and f32 scales (and zero points) of a group-wise affine layer.
inline double affine_stored_bytes(const J& p, double rows, double cols) {
  const double codes = std::ceil(rows * cols * param(p, "bits", 8) / 8);
  return codes + 4 * rows * affine_groups(p, cols) * (param(p, "symmetric", false) ? 1 : 2);
}
// Dense f32 weights, the mask and joint-quantisation scales of a pruned layer.
inline double pruned_stored_bytes(double rows, double cols) {
  const double n = rows * cols;
  return 4 * n + std::ceil(n / 8) + 8 * n / 32;
}
// Codes or mask and one f32 work copy: what the simple per-weight algorithms hold.
inline double per_weight_work_bytes(double rows, double cols) { return 6 * rows * cols; }

// The pruning stages' common parameters.
inline SparsityTarget sparsity_target(const J& p) {
  SparsityTarget t;
  t.sparsity = p["sparsity"].get<double>();
  const std::string pat = p["pattern"].get<std::string>();
  if (pat != "unstructured") t.nm_n = pat[0] - '0', t.nm_m = pat[2] - '0';
  return t;
}
inline PruneScope prune_scope(const J& p) {
  return p["scope"].get<std::string>() == "row" ? PruneScope::PerRow : PruneScope::PerLayer;
}

inline double log2_at_least_1(double x) { return std::max(1.0, std::log2(std::max(x, 1.0))); }

}  // namespace mcw::algo
