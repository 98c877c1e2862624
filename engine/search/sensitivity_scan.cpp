#include "engine/search/sensitivity_scan.h"

#include <tbb/info.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "engine/compress/affine_quantizer.h"
#include "engine/compress/algorithm.h"
#include "engine/compress/calibrate.h"
#include "engine/core/error.h"
#include "engine/core/sha256.h"
#include "engine/search/kl_meter.h"
#include "engine/search/sensitivity_cells.h"

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
  if (find_algorithm(s.algorithm)->run_stage)
    throw Error(kSource, "setting '" + s.name + "': " + s.algorithm +
                             " does not compress one linear layer on its own");
  return r.stages.front();
}

const Tensor& weight_of(const LlamaModel& m, const std::string& name) {
  for (const auto& [n, t] : m.named_tensors())
    if (n == name) return *t;
  throw Error(kSource, "the model has no tensor " + name);
}

}  // namespace

std::vector<std::string> linear_layer_names(const LlamaModel& m) {
  std::set<std::string> linear;
  for (const LinearGroup& g : linear_groups(m)) linear.insert(g.names.begin(), g.names.end());
  std::vector<std::string> out;
  for (const auto& [name, t] : m.named_tensors())
    if (linear.count(name)) out.push_back(name);
  return out;
}

const char* measure_name(SensitivityMeasure m) {
  switch (m) {
    case SensitivityMeasure::Layer: return "layer";
    case SensitivityMeasure::Block: return "block";
    default: return "kl";
  }
}

SensitivityMeasure measure_from_name(const std::string& name) {
  for (SensitivityMeasure m : {SensitivityMeasure::Kl, SensitivityMeasure::Layer, SensitivityMeasure::Block})
    if (name == measure_name(m)) return m;
  throw Error(kSource, "unknown measure '" + name + "' (expected kl, layer or block)");
}

const char* measure_title(SensitivityMeasure m) {
  switch (m) {
    case SensitivityMeasure::Layer: return "relative output error of the layer (proxy)";
    case SensitivityMeasure::Block: return "relative output error of the block (proxy)";
    default: return "KL divergence to the original (nats/token)";
  }
}

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
  const CompressAlgorithm* a = find_algorithm(s.algorithm);
  return a && a->kind == "quantize";
}

Recipe scan_cell_recipe(const ScanSetting& setting, const std::string& layer, int64_t in_features) {
  RecipeStage st = setting_stage(setting, layer);
  if (st.params.contains("group_size"))
    st.params["group_size"] = fit_group_size(st.params["group_size"].get<int>(), in_features);
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
  const auto linears = linear_layer_names(base);
  if (std::none_of(linears.begin(), linears.end(), [&](const std::string& l) { return scanned(l); }))
    throw Error(kSource, "no linear layer's name starts with the layers asked for");
  if (opt_.windows < 1) throw Error(kSource, "at least one window is needed");
  window_ = std::min(opt_.window, base.cfg.max_seq_len);
  if (window_ < 2) throw Error(kSource, "the window must be at least 2 tokens");
  const int64_t n = std::min<int64_t>(int64_t(tokens_.size()), opt_.windows * window_);
  if (n < 2) throw Error(kSource, "the calibration text has fewer than 2 tokens");
  windows_ = int64_t(eval_windows(n, {window_, window_}).size());
  measured_tokens_ = n;
  const bool layer = opt_.measure == SensitivityMeasure::Layer;
  if (layer) {  // the calibration windows are what the layer measure reads
    const int64_t cw = std::min(opt_.compress.calib_window, base.cfg.max_seq_len);
    const auto calib = calibration_windows(tokens_, opt_.compress.calib_windows, cw);
    windows_ = int64_t(calib.size());
    window_ = int64_t(calib.front().size());
  }

  std::set<std::string> names;
  const std::string probe = linear_layer_names(base).front();
  Sha256 tokens_hash;
  tokens_hash.update(tokens_.data(), size_t(n) * sizeof(int32_t));
  const std::string measured = to_hex(tokens_hash.finish());
  for (const ScanSetting& s : opt_.settings) {
    if (s.name.empty() || !names.insert(s.name).second)
      throw Error(kSource, "setting names must be unique and not empty ('" + s.name + "')");
    const RecipeStage st = setting_stage(s, probe);
    Sha256 h;
    // The kl measure's digests predate the others: they stay as they were, so that stores
    // written before keep their cells.
    if (opt_.measure != SensitivityMeasure::Kl) h.update(std::string(measure_name(opt_.measure)) + "\n");
    h.update(s.algorithm + "\n" + st.params.dump() + "\n" + measured + "\n" +
             std::to_string(window_) + "x" + std::to_string(windows_));
    Recipe probe_recipe;
    probe_recipe.stages.push_back(st);
    // Statistics (of a setting, or the layer measure's) come from the whole text.
    if (layer || recipe_needs_calibration(probe_recipe)) {
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

bool SensitivityScan::scanned(const std::string& layer) const {
  if (opt_.layer_prefixes.empty()) return true;
  for (const std::string& p : opt_.layer_prefixes)
    if (layer.rfind("model.layers." + p, 0) == 0) return true;
  return false;
}

SensitivityMemory SensitivityScan::memory_estimate() const {
  const LlamaConfig& c = base_.cfg;
  SensitivityMemory m;
  uint64_t owned = 0, largest = 0, widest = 0;
  for (const auto& [name, t] : base_.named_tensors())
    if (t->writable()) owned += uint64_t(t->numel()) * 4;  // compress_llama copies these
  for (const std::string& l : linear_layer_names(base_)) {
    if (!scanned(l)) continue;
    const Tensor& w = weight_of(base_, l);
    largest = std::max(largest, uint64_t(w.numel()));
    widest = std::max(widest, uint64_t(w.dim(1)));
  }
  // A cell: the owned tensors, its layer in f32 three times over (the original's copy,
  // the decoded weight, the compressor's working copy or the difference) and one window's
  // activations: the residual, its norm, q/k/v, attention output, gate and up.
  const uint64_t T = uint64_t(window_);
  const uint64_t acts = T * uint64_t(3 * c.dim + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.hidden_dim) * 4;
  m.per_cell = owned + 3 * largest * 4 + acts + (uint64_t(1) << 20);
  const uint64_t boundaries = uint64_t(c.n_layers + 1) * uint64_t(measured_tokens_) * uint64_t(c.dim) *
                              (opt_.block_inputs.dtype == DType::F32 ? 4 : 2);
  switch (opt_.measure) {
    case SensitivityMeasure::Kl: {
      int64_t scored = 0;
      for (const EvalWindow& w : eval_windows(measured_tokens_, {window_, window_}))
        scored += w.end - w.first_scored;
      m.reference_logits = KlMeter::reference_bytes(scored, c.vocab_size);
      m.block_inputs = opt_.reuse_block_inputs ? boundaries : 0;
      m.per_cell += T * uint64_t(c.vocab_size) * 4 + 2 * uint64_t(c.vocab_size) * 8;  // logits, log-softmax rows
      break;
    }
    case SensitivityMeasure::Layer:
      // XᵀX of the widest input in f64 and its f32 copy; calibration's own hidden states
      // (f32, every window) and its kept o/down inputs are sequential_calibrate's.
      m.statistics = widest * widest * 12 + uint64_t(windows_ * window_) * uint64_t(c.dim) * 4;
      m.per_cell += 256 * widest * 4;
      break;
    case SensitivityMeasure::Block:
      m.block_inputs = boundaries;
      break;
  }
  const uint64_t shared = m.reference_logits + m.block_inputs + m.statistics;
  const uint64_t room = opt_.memory_budget > shared ? opt_.memory_budget - shared : 0;
  int64_t live = opt_.max_parallel > 0 ? opt_.max_parallel : tbb::info::default_concurrency();
  m.parallel = std::clamp<int64_t>(int64_t(room / m.per_cell), 1, live);
  return m;
}

SensitivityTable SensitivityScan::run(RunStore* store, const ProgressFn& progress,
                                      const CancelToken* cancel) {
  SensitivityTable t;
  t.model_fingerprint = fingerprint_;
  t.measure = opt_.measure;
  for (const std::string& l : linear_layer_names(base_))
    if (scanned(l)) t.layers.push_back(l);
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
  const bool kl = opt_.measure == SensitivityMeasure::Kl;
  const std::string value_key = kl ? "kl" : measure_name(opt_.measure);

  // Read back what the store holds: one query for the whole model.
  std::map<std::tuple<std::string, std::string, std::string>, double> stored;
  if (store)
    for (const SensitivityEntry& e : store->list_sensitivity(fingerprint_))
      stored[{e.layer, e.setting, e.metric}] = e.value;
  std::vector<size_t> todo;
  for (size_t l = 0; l < t.layers.size(); ++l)
    for (size_t s = 0; s < S; ++s) {
      SensitivityCell& c = t.cells[l * S + s];
      c.layer = t.layers[l];
      c.setting = t.settings[s].name;
      auto get = [&](const std::string& q) -> std::optional<double> {
        auto it = stored.find({c.layer, c.setting, metric_key(q, s)});
        return it == stored.end() ? std::nullopt : std::optional(it->second);
      };
      const auto value = get(value_key), bits = get("bits");
      const auto ppl = kl ? get("ppl") : value, top1 = kl ? get("top1") : value;
      if (value && ppl && top1 && bits) {
        if (kl)
          c.kl = *value, c.perplexity = *ppl, c.top1 = *top1;
        else
          c.error = *value;
        c.bits = uint64_t(*bits);
        c.cached = true;
        ++t.cached;
      } else {
        todo.push_back(l * S + s);
      }
    }
  const double total = double(t.cells.size());
  for (const SensitivityCell& c : t.cells)
    if (c.cached && opt_.on_cell) opt_.on_cell(c);
  report(progress, "sensitivity", "", double(t.cached) / total,
         std::to_string(t.cached) + " cells cached");
  if (todo.empty()) return t;

  if (cancel) cancel->throw_if_cancelled();
  report(progress, "sensitivity", "reference", double(t.cached) / total,
         kl ? "reference logits" : opt_.measure == SensitivityMeasure::Layer ? "calibration statistics"
                                                                           : "block inputs");
  int64_t done = 0;
  CellWork work{base_, tokens_, opt_, t, todo, memory_estimate().parallel, {}, cancel};
  work.finished = [&](size_t cell) {
    const SensitivityCell& c = t.cells[cell];
    const size_t s = cell % S;
    if (store) {
      std::vector<SensitivityEntry> e;
      if (kl)
        e = {{c.layer, c.setting, metric_key("kl", s), c.kl},
             {c.layer, c.setting, metric_key("ppl", s), c.perplexity},
             {c.layer, c.setting, metric_key("top1", s), c.top1}};
      else
        e = {{c.layer, c.setting, metric_key(value_key, s), c.error}};
      e.push_back({c.layer, c.setting, metric_key("bits", s), double(c.bits)});
      store->put_sensitivities(fingerprint_, e);
    }
    ++t.computed;
    ++done;
    if (opt_.on_cell) opt_.on_cell(c);
    report(progress, "sensitivity", c.layer + " " + c.setting, double(t.cached + done) / total,
           c.setting + " on " + c.layer + ": " + value_key + " " +
               std::to_string(kl ? c.kl : c.error));
  };
  switch (opt_.measure) {
    case SensitivityMeasure::Kl: t.baseline_perplexity = measure_kl_cells(work, opt_.windows, window_); break;
    case SensitivityMeasure::Layer: measure_layer_cells(work); break;
    case SensitivityMeasure::Block: measure_block_cells(work, opt_.windows, window_); break;
  }
  if (cancel) cancel->throw_if_cancelled();
  return t;
}

}  // namespace mcw
