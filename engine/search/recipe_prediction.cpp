#include "engine/search/recipe_prediction.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "engine/compress/algorithm.h"
#include "engine/compress/compress_llama.h"
#include "engine/core/error.h"
#include "engine/runs/project_runner.h"
#include "engine/search/layer_latency.h"
#include "engine/search/mixed_precision.h"

namespace mcw {

namespace {

const char* const kSource = "prediction";

std::string stage_where(const Recipe& r, size_t i) {
  const RecipeStage& s = r.stages[i];
  return (s.line ? "line " + std::to_string(s.line) + ": " : std::string()) + "stage " +
         std::to_string(i + 1) + " (" + s.algorithm + "): ";
}

void check_per_layer(const Recipe& r, size_t i) {
  const CompressAlgorithm* a = find_algorithm(r.stages[i].algorithm);
  if (!a || a->run_stage)
    throw Error(r.source, stage_where(r, i) +
                              "works on the whole model, not one linear at a time, so a "
                              "sensitivity scan cannot predict it");
}

// What a cell of `s` does to `layer`: the same algorithm and parameters as `stage`.
bool cell_is_stage(const ScanSetting& s, const std::string& layer, int64_t in_features,
                   const RecipeStage& stage) {
  if (s.algorithm != stage.algorithm) return false;
  const RecipeStage cell = scan_cell_recipe(s, layer, in_features).stages.front();
  return cell.params == stage.params;
}

// The setting mcw sensitivity names ("w4", "w3g64", "s50") whose cells are what `st` does
// to each of `layers` (w4 for a stage written with w4's group-size fallback), else one named
// by the algorithm and the parameters that differ from its defaults.
ScanSetting stage_setting(const RecipeStage& st, const std::vector<std::string>& layers,
                          std::map<std::string, int64_t>& in_features) {
  std::vector<std::string> names;
  if (st.algorithm == "rtn" && st.params.contains("bits") && st.params.contains("group_size")) {
    const std::string w = "w" + std::to_string(st.params["bits"].get<int>());
    names = {w, w + "g" + std::to_string(st.params["group_size"].get<int>())};
  } else if (st.algorithm == "magnitude" && st.params.contains("sparsity")) {
    names = {"s" + std::to_string(int(std::lround(st.params["sparsity"].get<double>() * 100)))};
  }
  for (const std::string& n : names) {
    ScanSetting s;
    try {
      s = scan_setting_from_name(n);
    } catch (const Error&) {  // not a name mcw sensitivity knows
      continue;
    }
    if (std::all_of(layers.begin(), layers.end(),
                    [&](const std::string& l) { return cell_is_stage(s, l, in_features[l], st); }))
      return s;
  }
  std::string name = st.algorithm;
  for (const ParamSpec& p : find_algorithm(st.algorithm)->params) {
    const auto v = st.params.find(p.key);
    if (v == st.params.end() || *v == p.fallback) continue;
    name += " " + p.key + "=" + (v->is_string() ? v->get<std::string>() : v->dump());
  }
  return {name, st.algorithm, st.params};
}

}  // namespace

ScanSetting scan_setting_from_label(const std::string& label) {
  if (label.find(' ') == std::string::npos && !find_algorithm(label))
    return scan_setting_from_name(label);
  std::istringstream in(label);
  ScanSetting s{label, {}, nlohmann::json::object()};
  in >> s.algorithm;
  const CompressAlgorithm* a = find_algorithm(s.algorithm);
  if (!a) throw Error(kSource, "setting '" + label + "': unknown algorithm '" + s.algorithm + "'");
  for (std::string kv; in >> kv;) {
    const size_t eq = kv.find('=');
    const std::string key = kv.substr(0, eq);
    if (eq == std::string::npos || eq == 0 || eq + 1 == kv.size())
      throw Error(kSource, "setting '" + label + "': expected key=value, not '" + kv + "'");
    if (std::none_of(a->params.begin(), a->params.end(),
                     [&](const ParamSpec& p) { return p.key == key; }))
      throw Error(kSource, "setting '" + label + "': " + s.algorithm + " has no parameter '" + key + "'");
    const std::string text = kv.substr(eq + 1);
    nlohmann::json v = nlohmann::json::parse(text, nullptr, false);
    s.params[key] = v.is_discarded() ? nlohmann::json(text) : v;
  }
  return s;
}

std::vector<ScanSetting> recipe_scan_settings(const Recipe& recipe, const LlamaModel& model) {
  const std::vector<std::string> layers = linear_layer_names(model);
  std::map<std::string, int64_t> in_features;
  for (const auto& [name, t] : model.named_tensors()) in_features[name] = t->dim(t->ndim() - 1);
  std::map<std::string, size_t> stage_of;  // layer -> the stage compressing it
  std::vector<ScanSetting> out;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    check_per_layer(recipe, i);
    const RecipeStage& st = recipe.stages[i];
    const std::vector<std::string> mine = stage_tensors(st, layers);
    for (const std::string& l : mine)
      if (!stage_of.emplace(l, i).second)
        throw Error(recipe.source, stage_where(recipe, i) + l + " is compressed by stage " +
                                       std::to_string(stage_of[l] + 1) +
                                       " too; a prediction takes one setting per layer");
    if (mine.empty()) continue;
    // What compress_llama's pre-flight refuses, a cell would quietly fit to the layer.
    const int64_t g = st.params.value("group_size", 0);
    for (const std::string& l : mine)
      if (g > 0 && in_features[l] % g)
        throw Error(recipe.source, stage_where(recipe, i) + "group_size " + std::to_string(g) +
                                       " does not divide the " + std::to_string(in_features[l]) +
                                       " input columns of " + l);
    const bool known = std::any_of(out.begin(), out.end(), [&](const ScanSetting& s) {
      return std::all_of(mine.begin(), mine.end(), [&](const std::string& l) {
        return cell_is_stage(s, l, in_features[l], st);
      });
    });
    if (known) continue;
    ScanSetting s = stage_setting(st, mine, in_features);
    const std::string label = s.name;
    auto taken = [&] {
      return std::any_of(out.begin(), out.end(),
                         [&](const ScanSetting& o) { return o.name == s.name; });
    };
    for (int k = 2; taken(); ++k) s.name = label + " #" + std::to_string(k);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<int> recipe_assignment(const SensitivityTable& table, const Recipe& recipe) {
  std::vector<int> a(table.layers.size(), -1);
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    check_per_layer(recipe, i);
    const RecipeStage& st = recipe.stages[i];
    for (const std::string& layer : stage_tensors(st, table.layers)) {
      const size_t l = *table.layer_index(layer);
      if (a[l] >= 0)
        throw Error(recipe.source, stage_where(recipe, i) + layer +
                                       " is compressed by an earlier stage too; a prediction "
                                       "takes one setting per layer");
      for (size_t s = 0; s < table.settings.size() && a[l] < 0; ++s)
        if (cell_is_stage(table.settings[s], layer, table.layer_in_features[l], st)) a[l] = int(s);
      if (a[l] < 0) {
        std::string names;
        for (const ScanSetting& s : table.settings) names += (names.empty() ? "" : ", ") + s.name;
        throw Error(recipe.source, stage_where(recipe, i) + "what it does to " + layer +
                                       " is no setting of the sensitivity scan (" + names + ")");
      }
    }
  }
  return a;
}

PredictionCalibration calibrate_prediction(std::span<const RunRecord> runs,
                                           const std::string& model_fingerprint) {
  PredictionCalibration c;
  std::vector<double> ratios, kls, ppls;
  for (const RunRecord& r : runs) {
    if (r.info.status != RunStatus::Done || r.info.model_fingerprint != model_fingerprint) continue;
    const auto ppl = r.metric("perplexity"), kl = r.metric("kl"),
               predicted = r.metric("predicted_kl");
    if (r.info.recipe_name == kBaselineRecipe) {
      if (ppl && c.baseline_perplexity == 0) c.baseline_perplexity = *ppl;  // newest first
      continue;
    }
    if (kl && *kl > 0 && predicted && *predicted > 0) ratios.push_back(std::log(*kl / *predicted));
    if (kl && *kl > 0 && ppl && *ppl > 0) kls.push_back(*kl), ppls.push_back(*ppl);
  }
  auto mean_sd = [](const std::vector<double>& x, double& mean, double& sd) {
    mean = 0, sd = 0;
    for (double v : x) mean += v / double(x.size());
    for (double v : x) sd += (v - mean) * (v - mean);
    sd = x.size() > 1 ? std::sqrt(sd / double(x.size() - 1)) : 0;
  };
  c.kl_runs = int64_t(ratios.size());
  if (!ratios.empty()) mean_sd(ratios, c.log_ratio_mean, c.log_ratio_sd);
  if (c.baseline_perplexity > 0 && !kls.empty()) {
    double kk = 0, ky = 0;
    std::vector<double> y;
    for (size_t i = 0; i < kls.size(); ++i) {
      y.push_back(std::log(ppls[i] / c.baseline_perplexity));
      kk += kls[i] * kls[i], ky += kls[i] * y.back();
    }
    c.perplexity_runs = int64_t(kls.size());
    c.perplexity_slope = ky / kk;
    double ss = 0;
    for (size_t i = 0; i < kls.size(); ++i) ss += std::pow(y[i] - c.perplexity_slope * kls[i], 2);
    c.perplexity_residual_sd = kls.size() > 1 ? std::sqrt(ss / double(kls.size() - 1)) : 0;
  }
  return c;
}

RecipePrediction predict_assignment(const SensitivityTable& table, std::span<const int> assignment,
                                    const PredictionCalibration& cal,
                                    const LayerLatencyTable* latency) {
  if (assignment.size() != table.layers.size())
    throw Error(kSource, "one setting per layer of the sensitivity table is needed");
  RecipePrediction p;
  p.measure = table.measure;
  p.assignment.assign(assignment.begin(), assignment.end());
  p.parameters = table.model_parameters;
  uint64_t scanned = 0;
  double ms = latency ? latency->rest_ms : 0;
  for (size_t l = 0; l < table.layers.size(); ++l) {
    const int s = assignment[l];
    if (s >= int(table.settings.size()))
      throw Error(kSource, "setting " + std::to_string(s) + " of " + table.layers[l] +
                               " is not a column of the table");
    scanned += table.layer_parameters[l];
    if (s < 0) {
      p.storage_bits += 16 * table.layer_parameters[l];
      if (latency) ms += latency->dense_ms.at(l);
      continue;
    }
    ++p.compressed_layers;
    p.score += table.value(l, size_t(s));
    p.storage_bits += table.at(l, size_t(s)).bits;
    if (latency) ms += latency->at(table.layers[l], table.settings[size_t(s)].name);
  }
  p.storage_bits += 16 * (table.model_parameters - scanned);
  p.bits_per_weight = p.parameters ? double(p.storage_bits) / double(p.parameters) : 0;
  if (latency) p.latency_ms = ms;
  if (table.measure != SensitivityMeasure::Kl) return p;
  p.kl = p.score;
  if (cal.kl_runs >= 2) {
    p.kl_low = p.kl * std::exp(std::min(0.0, cal.log_ratio_mean - 2 * cal.log_ratio_sd));
    p.kl_high = p.kl * std::exp(std::max(0.0, cal.log_ratio_mean + 2 * cal.log_ratio_sd));
  }
  if (cal.baseline_perplexity > 0 && cal.perplexity_runs > 0) {
    // The fit is on KL as the runs measure it (the evaluation text), the scan's on its own
    // windows: the runs' mean ratio carries one to the other. The KL band already is on
    // the runs' side.
    const double shift = cal.kl_runs > 0 ? std::exp(cal.log_ratio_mean) : 1.0;
    auto ppl = [&](double kl, double sd) {
      return cal.baseline_perplexity * std::exp(cal.perplexity_slope * kl + sd);
    };
    p.perplexity = ppl(p.kl * shift, 0);
    if (std::isfinite(p.kl_low)) {
      p.perplexity_low = ppl(p.kl_low, -2 * cal.perplexity_residual_sd);
      p.perplexity_high = ppl(p.kl_high, 2 * cal.perplexity_residual_sd);
    }
  }
  return p;
}

nlohmann::json prediction_json(const RecipePrediction& p, const Recipe& recipe) {
  nlohmann::json j = {{"measure", measure_name(p.measure)},
                      {"stages", recipe_stages_digest(recipe)}};
  const std::pair<const char*, double> values[] = {{"score", p.score},
                                                   {"kl", p.kl},
                                                   {"kl_low", p.kl_low},
                                                   {"kl_high", p.kl_high},
                                                   {"perplexity", p.perplexity},
                                                   {"perplexity_low", p.perplexity_low},
                                                   {"perplexity_high", p.perplexity_high},
                                                   {"bits_per_weight", p.bits_per_weight},
                                                   {"size_bytes", double(p.storage_bits / 8)},
                                                   {"latency_ms", p.latency_ms}};
  for (const auto& [k, v] : values)
    if (std::isfinite(v)) j[k] = v;
  return j;
}

Recipe assignment_recipe(const SensitivityTable& table, std::span<const int> assignment,
                         const std::string& name, const RecipePrediction* p) {
  if (assignment.size() != table.layers.size())
    throw Error(kSource, "one setting per layer of the sensitivity table is needed");
  std::vector<std::string> settings;
  for (int s : assignment)
    settings.push_back(s < 0 ? std::string() : table.settings.at(size_t(s)).name);
  Recipe r = mixed_precision_recipe(table, settings, name);
  if (r.stages.empty()) throw Error(kSource, "every layer is kept as it is: nothing to compress");
  r.description = "per-layer settings chosen on the sensitivity heatmap";
  if (p) r.prediction = prediction_json(*p, r);
  return r;
}

}  // namespace mcw
