#include "engine/search/sensitivity_scan.h"

#include <tbb/info.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "engine/compress/calibrate.h"
#include "engine/core/error.h"
#include "engine/core/sha256.h"
#include "engine/search/bounded_parallel.h"
#include "engine/search/kl_meter.h"

namespace mcw {

namespace {

using json = nlohmann::json;

const char* const kSource = "sensitivity scan";

// The validated stage of a setting (defaults filled in) targeting `layer`, through the
// recipe parser so that a setting is held to exactly the rules of a recipe file.
RecipeStage setting_stage(const ScanSetting& s, const std::string& layer) {
  json stage = s.params.is_object() ? s.params : json::object();
  if (!s.params.is_object())
    throw Error(kSource, "setting '" + s.name + "': parameters must be an object");
  stage["algorithm"] = s.algorithm;
  stage["targets"] = json::array({layer});
  const json text = {{"stages", json::array({stage})}};
  Recipe r = parse_recipe(text.dump(), std::string(kSource) + " setting '" + s.name + "'");
  const AlgorithmSpec* spec = find_algorithm(s.algorithm);
  if (spec->kind == "structured" || s.algorithm == "smoothquant")
    throw Error(kSource, "setting '" + s.name + "': " + s.algorithm +
                             " does not compress one linear layer on its own");
  return r.stages.front();
}

std::vector<std::string> linear_layers(const LlamaModel& m) {
  std::set<std::string> linear;
  for (const LinearGroup& g : linear_groups(m)) linear.insert(g.names.begin(), g.names.end());
  std::vector<std::string> out;
  for (const auto& [name, t] : m.named_tensors())
    if (linear.count(name)) out.push_back(name);
  return out;
}

const Tensor& weight_of(const LlamaModel& m, const std::string& name) {
  for (const auto& [n, t] : m.named_tensors())
    if (n == name) return *t;
  throw Error(kSource, "the model has no tensor " + name);
}

}  // namespace

std::vector<ScanSetting> default_scan_settings() {
  std::vector<ScanSetting> out;
  for (const char* n : {"w8", "w4", "w3", "w2", "s25", "s50", "s75"})
    out.push_back(scan_setting_from_name(n));
  return out;
}

ScanSetting scan_setting_from_name(const std::string& name) {
  auto number = [&](size_t from, size_t to) -> int {
    if (from >= to || to - from > 3) return -1;
    int v = 0;
    for (size_t i = from; i < to; ++i) {
      if (name[i] < '0' || name[i] > '9') return -1;
      v = v * 10 + (name[i] - '0');
    }
    return v;
  };
  auto bad = [&]() -> ScanSetting {
    throw Error(kSource, "unknown setting '" + name +
                             "' (expected w<bits>[g<group>] with bits 2/3/4/8 and group 32/64/128, "
                             "or s<percent> with 1..99, e.g. w4, w4g64, s50)");
  };
  if (name.size() >= 2 && name[0] == 'w') {
    const size_t g = name.find('g');
    const int bits = number(1, g == std::string::npos ? name.size() : g);
    const int group = g == std::string::npos ? 128 : number(g + 1, name.size());
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8) return bad();
    if (group != 32 && group != 64 && group != 128) return bad();
    return {name, "rtn", {{"bits", bits}, {"group_size", group}, {"symmetric", false}}};
  }
  if (name.size() >= 2 && name[0] == 's') {
    const int pct = number(1, name.size());
    if (pct < 1 || pct > 99) return bad();
    return {name, "magnitude", {{"sparsity", pct / 100.0}, {"pattern", "unstructured"}}};
  }
  return bad();
}

bool is_quantization_setting(const ScanSetting& s) {
  const AlgorithmSpec* a = find_algorithm(s.algorithm);
  return a && a->kind == "quantize";
}

Recipe scan_cell_recipe(const ScanSetting& setting, const std::string& layer, int64_t in_features) {
  RecipeStage st = setting_stage(setting, layer);
  if (st.params.contains("group_size")) {
    const int g = st.params["group_size"].get<int>();
    if (g > 0 && in_features % g) {
      int fit = 0;
      for (int c : {128, 64, 32})
        if (c <= g && in_features % c == 0 && !fit) fit = c;
      st.params["group_size"] = fit;
    }
  }
  st.line = 0;
  Recipe r;
  r.name = setting.name + " " + layer;
  r.source = kSource;
  r.stages.push_back(std::move(st));
  return r;
}

std::optional<size_t> SensitivityTable::layer_index(const std::string& name) const {
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i] == name) return i;
  return std::nullopt;
}

std::optional<size_t> SensitivityTable::setting_index(const std::string& name) const {
  for (size_t i = 0; i < settings.size(); ++i)
    if (settings[i].name == name) return i;
  return std::nullopt;
}

SensitivityScan::SensitivityScan(const LlamaModel& base, std::string model_fingerprint,
                                 std::span<const int32_t> calibration_tokens,
                                 SensitivityOptions options)
    : base_(base),
      fingerprint_(std::move(model_fingerprint)),
      tokens_(calibration_tokens),
      opt_(std::move(options)) {
  if (opt_.settings.empty()) throw Error(kSource, "no settings to scan");
  if (opt_.windows < 1) throw Error(kSource, "at least one window is needed");
  window_ = std::min(opt_.window, base.cfg.max_seq_len);
  if (window_ < 2) throw Error(kSource, "the window must be at least 2 tokens");
  const int64_t n = std::min<int64_t>(int64_t(tokens_.size()), opt_.windows * window_);
  if (n < 2) throw Error(kSource, "the calibration text has fewer than 2 tokens");
  windows_ = int64_t(eval_windows(n, {window_, window_}).size());

  std::set<std::string> names;
  const std::string probe = linear_layers(base).front();
  Sha256 tokens_hash;
  tokens_hash.update(tokens_.data(), size_t(n) * sizeof(int32_t));
  const std::string measured = to_hex(tokens_hash.finish());
  for (const ScanSetting& s : opt_.settings) {
    if (s.name.empty() || !names.insert(s.name).second)
      throw Error(kSource, "setting names must be unique and not empty ('" + s.name + "')");
    const RecipeStage st = setting_stage(s, probe);
    Sha256 h;
    h.update(s.algorithm + "\n" + st.params.dump() + "\n" + measured + "\n" +
             std::to_string(window_) + "x" + std::to_string(windows_));
    Recipe probe_recipe;
    probe_recipe.stages.push_back(st);
    if (recipe_needs_calibration(probe_recipe)) {  // its statistics come from the whole text
      h.update(tokens_.data(), tokens_.size() * sizeof(int32_t));
      h.update(std::to_string(opt_.compress.calib_windows) + "x" +
               std::to_string(opt_.compress.calib_window));
    }
    digests_.push_back(to_hex(h.finish()).substr(0, 12));
  }
}

std::string SensitivityScan::metric_key(const std::string& quantity, size_t setting) const {
  return quantity + "@" + std::to_string(windows_) + "x" + std::to_string(window_) + "#" +
         digests_.at(setting);
}

SensitivityTable SensitivityScan::run(RunStore* store, const ProgressFn& progress,
                                      const CancelToken* cancel) {
  SensitivityTable t;
  t.model_fingerprint = fingerprint_;
  t.layers = linear_layers(base_);
  t.settings = opt_.settings;
  t.model_parameters = base_.parameter_count();
  t.windows = windows_;
  t.window = window_;
  const size_t S = t.settings.size();
  for (const std::string& l : t.layers) {
    t.layer_parameters.push_back(uint64_t(weight_of(base_, l).numel()));
    t.layer_in_features.push_back(weight_of(base_, l).dim(1));
  }
  t.cells.resize(t.layers.size() * S);

  // Read back what the store holds: one query for the whole model.
  std::map<std::tuple<std::string, std::string, std::string>, double> stored;
  if (store)
    for (const SensitivityEntry& e : store->list_sensitivity(fingerprint_))
      stored[{e.layer, e.setting, e.metric}] = e.value;
  std::vector<int64_t> todo;
  for (size_t l = 0; l < t.layers.size(); ++l)
    for (size_t s = 0; s < S; ++s) {
      SensitivityCell& c = t.cells[l * S + s];
      c.layer = t.layers[l];
      c.setting = t.settings[s].name;
      auto get = [&](const char* q) -> std::optional<double> {
        auto it = stored.find({c.layer, c.setting, metric_key(q, s)});
        return it == stored.end() ? std::nullopt : std::optional(it->second);
      };
      const auto kl = get("kl"), ppl = get("ppl"), top1 = get("top1"), bits = get("bits");
      if (kl && ppl && top1 && bits) {
        c.kl = *kl, c.perplexity = *ppl, c.top1 = *top1, c.bits = uint64_t(*bits);
        c.cached = true;
        ++t.cached;
      } else {
        todo.push_back(int64_t(l * S + s));
      }
    }
  const double total = double(t.cells.size());
  for (const SensitivityCell& c : t.cells)
    if (c.cached && opt_.on_cell) opt_.on_cell(c);
  report(progress, "sensitivity", "", double(t.cached) / total,
         std::to_string(t.cached) + " cells cached");
  if (todo.empty()) return t;

  if (cancel) cancel->throw_if_cancelled();
  report(progress, "sensitivity", "reference", double(t.cached) / total, "reference logits");
  const KlMeter meter(base_, tokens_, window_, opt_.windows, cancel);
  t.baseline_perplexity = meter.measure(base_, {}, cancel).perplexity;

  // Each cell in flight holds a model copy and a window of logits.
  const uint64_t per_cell = base_.parameter_count() * 4 +
                            uint64_t(window_) * uint64_t(base_.cfg.vocab_size) * 4 +
                            (uint64_t(1) << 20);
  int64_t live = opt_.max_parallel > 0 ? opt_.max_parallel : tbb::info::default_concurrency();
  live = std::clamp<int64_t>(int64_t(opt_.memory_budget / per_cell), 1, live);

  int64_t done = 0;
  bounded_parallel_for(
      int64_t(todo.size()), live,
      [&](int64_t i) {
        SensitivityCell& c = t.cells[size_t(todo[size_t(i)])];
        const size_t s = size_t(todo[size_t(i)]) % S;
        const Tensor& w = weight_of(base_, c.layer);
        const Recipe r = scan_cell_recipe(t.settings[s], c.layer, w.dim(1));
        const CompressionResult res = compress_llama(base_, r, tokens_, opt_.compress, {}, cancel);
        const KlMeasurement m = meter.measure(res.model, {}, cancel);
        c.kl = m.kl, c.perplexity = m.perplexity, c.top1 = m.top1;
        // Everything but the layer counts 16 bits per weight in the accounting.
        c.bits = res.storage_bits - (res.original_bits - 16 * uint64_t(w.numel()));
      },
      [&](int64_t i) {
        const size_t cell = size_t(todo[size_t(i)]);
        const SensitivityCell& c = t.cells[cell];
        const size_t s = cell % S;
        if (store)
          store->put_sensitivities(fingerprint_,
                                   {{c.layer, c.setting, metric_key("kl", s), c.kl},
                                    {c.layer, c.setting, metric_key("ppl", s), c.perplexity},
                                    {c.layer, c.setting, metric_key("top1", s), c.top1},
                                    {c.layer, c.setting, metric_key("bits", s), double(c.bits)}});
        ++t.computed;
        ++done;
        if (opt_.on_cell) opt_.on_cell(c);
        report(progress, "sensitivity", c.layer + " " + c.setting, double(t.cached + done) / total,
               c.setting + " on " + c.layer + ": KL " + std::to_string(c.kl));
      },
      [&] { return cancel && cancel->cancelled(); });
  if (cancel) cancel->throw_if_cancelled();
  return t;
}

}  // namespace mcw
