#include "engine/compress/compress_llama.h"

#include <chrono>
#include <map>
#include <memory>
#include <set>

#include "engine/compress/awq.h"
#include "engine/compress/awq_gptq.h"
#include "engine/compress/calibrate.h"
#include "engine/compress/gptq.h"
#include "engine/compress/kmeans.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/compress/low_rank.h"
#include "engine/compress/magnitude.h"
#include "engine/compress/rtn.h"
#include "engine/compress/smoothquant_stage.h"
#include "engine/compress/sparsegpt.h"
#include "engine/compress/structured_model.h"
#include "engine/compress/structured_stage.h"
#include "engine/compress/wanda.h"
#include "engine/core/error.h"
#include "engine/kernels/gram.h"

namespace mcw {

namespace {

using json = nlohmann::json;

[[noreturn]] void stage_error(const Recipe& r, size_t i, const std::string& what) {
  const RecipeStage& s = r.stages[i];
  throw Error(r.source, (s.line ? "line " + std::to_string(s.line) + ": " : std::string()) + "stage " +
                            std::to_string(i + 1) + " (" + s.algorithm + "): " + what);
}

bool needs_stats(const RecipeStage& s) {
  return calibration_need(s.algorithm, s.params) != CalibrationNeed::None;
}

// The decoder block of "model.layers.N.…".
int64_t layer_of(const std::string& name) {
  return std::stoll(name.substr(std::string("model.layers.").size()));
}

bool is_structured(const RecipeStage& s) { return s.algorithm == "heads" || s.algorithm == "channels"; }

StructuredStageOptions structured_options(const RecipeStage& s) {
  StructuredStageOptions o;
  o.heads = s.algorithm == "heads";
  o.fraction = s.params["fraction"].get<double>();
  o.score = structured_score(s.params["score"].get<std::string>());
  const std::string inputs = s.params["inputs"].get<std::string>();
  o.uncompressed_inputs = inputs == "auto" ? o.score == StructuredScore::Flap : inputs == "dense";
  if (o.heads) o.square_head_scores = s.params["square_scores"].get<bool>();
  return o;
}

// Input columns of a linear under config `c` (shapes change with structured stages).
int64_t in_features(const LlamaConfig& c, const std::string& name) {
  if (name.ends_with("o_proj.weight")) return c.q_dim();
  if (name.ends_with("down_proj.weight")) return c.hidden_dim;
  return c.dim;
}

// A structured stage must take the same units out of every layer (LlamaConfig is uniform):
// its targets have to cover the o_proj (heads) or down_proj (channels) of every layer.
void check_structured(const Recipe& r, size_t i, const LlamaConfig& c, const std::set<std::string>& names) {
  const StructuredStageOptions o = structured_options(r.stages[i]);
  const std::string what = o.heads ? "self_attn.o_proj.weight" : "mlp.down_proj.weight";
  for (int64_t l = 0; l < c.n_layers; ++l)
    if (!names.count("model.layers." + std::to_string(l) + "." + what))
      stage_error(r, i, "must target the " + what + " of every layer (every layer loses the same "
                        "units); layer " + std::to_string(l) + " is not targeted");
  if (structured_removal_count(c, o) == 0) {
    const HeadUnits u = head_units(c);
    const int64_t units = o.heads ? u.count : c.hidden_dim;
    stage_error(r, i, "fraction " + r.stages[i].params["fraction"].dump() + " of " + std::to_string(units) +
                          (o.heads ? (u.with_kv ? " key/value head groups" : " heads") : " channels") +
                          " removes nothing");
  }
}

SparsityTarget sparsity_target(const json& p) {
  SparsityTarget t;
  t.sparsity = p["sparsity"].get<double>();
  const std::string pat = p["pattern"].get<std::string>();
  if (pat != "unstructured") t.nm_n = pat[0] - '0', t.nm_m = pat[2] - '0';
  return t;
}

PruneScope prune_scope(const json& p) {
  return p["scope"].get<std::string>() == "row" ? PruneScope::PerRow : PruneScope::PerLayer;
}

RtnOptions rtn_options(const json& p) {
  RtnOptions o;
  o.bits = p["bits"].get<int>();
  o.symmetric = p["symmetric"].get<bool>();
  const int g = p["group_size"].get<int>();
  o.scope = g == 0 ? QuantScope::PerChannel : g < 0 ? QuantScope::PerTensor : QuantScope::Group;
  o.group_size = g > 0 ? g : 128;
  return o;
}

// tr(ΔW·H·ΔWᵀ) / tr(W·H·Wᵀ) with H = XᵀX, its diagonal (Σx², for methods that gather no
// XᵀX: Wanda, k-means), or the plain weight ratio without statistics.
double relative_error(const Tensor& w, const Tensor& q, const LayerStats* stats) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const float* a = w.as<float>();
  const float* b = q.as<float>();
  std::vector<float> d(size_t(rows * cols));
  for (size_t i = 0; i < d.size(); ++i) d[i] = a[i] - b[i];
  if (!stats || stats->xtx.empty()) {
    double num = 0, den = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const double h = stats ? stats->sq_norm[i % size_t(cols)] : 1.0;
      num += h * d[i] * d[i], den += h * a[i] * a[i];
    }
    return den > 0 ? num / den : 0;
  }
  const double num = weighted_square_norm(d.data(), rows, cols, stats->xtx.data());
  const double den = weighted_square_norm(a, rows, cols, stats->xtx.data());
  return den > 0 ? num / den : 0;
}

struct GroupData {
  LayerStats stats;
  std::vector<float> samples;  // AWQ: whole calibration windows of the input, in order
  std::vector<int64_t> sample_windows;  // their row counts
  int64_t sample_rows = 0;
};

class StageRunner {
 public:
  StageRunner(const Recipe& r, size_t index, LlamaModel& model, CompressionResult& out,
              const CancelToken* cancel)
      : r_(r), i_(index), s_(r.stages[index]), p_(s_.params), model_(model), out_(out), cancel_(cancel) {}

  void compress_one(const std::string& name, const LayerStats* stats) {
    Tensor* w = find_weight_f32(model_, name);
    CompressedTensor c = run(*w, name, stats);
    store(name, *w, std::move(c), stats);
  }

  // AWQ searches one scale vector for all linears sharing an input.
  void compress_awq(int64_t layer, const std::vector<std::string>& names, const GroupData& g) {
    std::vector<AwqLayer> layers;
    for (const std::string& n : names) {
      const Tensor* w = find_weight_f32(model_, n);
      const bool qk = n.ends_with("q_proj.weight") || n.ends_with("k_proj.weight");
      layers.push_back({w->as<float>(), w->dim(0), n, !qk});
    }
    AwqOptions o;
    o.bits = p_["bits"].get<int>();
    o.symmetric = p_["symmetric"].get<bool>();
    o.group_size = std::max(0, p_["group_size"].get<int>());
    if (o.group_size == 0) o.group_size = g.stats.cols;
    o.grid = p_["grid"].get<int>();
    o.clip = p_["clip_search"].get<bool>();
    AwqResult res = quantize_awq(layers, g.samples.data(), g.sample_rows, g.stats.cols, o, cancel_,
                                 awq_module_loss(layer, names, g));
    if (p_["quantizer"].get<std::string>() == "gptq") {
      GptqOptions q;
      q.bits = o.bits, q.symmetric = o.symmetric, q.group_size = o.group_size;
      q.act_order = q.static_groups = true;
      res.layers = quantize_awq_gptq(layers, g.stats, res.input_scale, q, cancel_);
    }
    for (size_t k = 0; k < names.size(); ++k) {
      Tensor* w = find_weight_f32(model_, names[k]);
      // The tensor carries s, so that it decodes (and exports) to the weight the model runs.
      CompressedTensor& t = res.layers[k];
      t.input_scale = res.input_scale;
      Tensor eff = t.dequantize();
      const double err = relative_error(*w, eff, &g.stats);
      record(names[k], std::move(t), err, true);
      *w = std::move(eff);
      w->set_name(names[k]);
    }
  }

 private:
  // The reference's module2inspect: q/k/v are scored by the attention's output (through
  // o_proj) and gate/up by the MLP's (through down_proj), with the block's other weights as
  // they are; o_proj and down_proj by their own output (an empty loss).
  AwqModuleLoss awq_module_loss(int64_t layer, const std::vector<std::string>& names,
                                const GroupData& g) {
    const bool attention = names.front().find(".self_attn.") != std::string::npos &&
                           !names.front().ends_with("o_proj.weight");
    const bool mlp = names.front().ends_with("gate_proj.weight") || names.front().ends_with("up_proj.weight");
    if (!attention && !mlp) return {};
    // Runs the module on the sampled windows with the model's current weights.
    auto output = [this, &g, layer, attention](std::vector<float>& y) {
      const LlamaConfig& c = model_.cfg;
      const int64_t inner = attention ? c.q_dim() : c.hidden_dim;
      std::vector<float> mid;
      y.assign(size_t(g.sample_rows * c.dim), 0.0f);
      int64_t at = 0;
      for (int64_t rows : g.sample_windows) {
        mid.resize(size_t(rows * inner));
        const float* x = g.samples.data() + at * c.dim;
        float* out = y.data() + at * c.dim;
        if (attention) {
          llama_attention_output(model_, layer, x, rows, mid.data());
          llama_add_o_proj(model_, layer, mid.data(), rows, out);
        } else {
          llama_mlp_hidden(model_, layer, x, rows, mid.data());
          llama_add_down_proj(model_, layer, mid.data(), rows, out);
        }
        at += rows;
      }
    };
    auto reference = std::make_shared<std::vector<float>>();
    output(*reference);
    return [this, names, output, reference](const std::vector<const float*>& effective) {
      // The candidates stand in for the group's weights while the module runs.
      std::vector<std::pair<Tensor*, Tensor>> saved;
      for (size_t k = 0; k < names.size(); ++k) {
        Tensor* t = find_weight(model_, names[k]);
        const int64_t n = t->numel();
        saved.emplace_back(t, std::move(*t));
        *t = Tensor::from_f32({effective[k], size_t(n)}, saved.back().second.shape(), names[k]);
      }
      std::vector<float> y;
      output(y);
      for (auto& [t, original] : saved) *t = std::move(original);
      double e = 0;
      for (size_t i = 0; i < y.size(); ++i) e += (double((*reference)[i]) - y[i]) * (double((*reference)[i]) - y[i]);
      return e;
    };
  }

  CompressedTensor run(const Tensor& w, const std::string& name, const LayerStats* st) {
    const std::string& a = s_.algorithm;
    const int64_t rows = w.dim(0), cols = w.dim(1);
    if (a == "rtn") {
      RtnOptions o = rtn_options(p_);
      o.clip.enabled = p_["mse_clip"].get<bool>();
      return quantize_rtn(w.as<float>(), rows, cols, o, nullptr, cancel_, name);
    }
    if (a == "gptq") {
      GptqOptions o;
      o.bits = p_["bits"].get<int>();
      o.symmetric = p_["symmetric"].get<bool>();
      const int g = p_["group_size"].get<int>();
      if (g < 0) stage_error(r_, i_, "per-tensor scales (group_size -1) are not available for gptq");
      o.group_size = g;
      o.percdamp = p_["damp"].get<double>();
      o.block_size = p_["block_size"].get<int64_t>();
      o.act_order = p_["act_order"].get<bool>();
      o.static_groups = p_["static_groups"].get<bool>();
      if (const double t = p_["outlier_threshold"].get<double>(); t > 0) o.outlier_threshold = t;
      o.outlier_fraction = p_["outlier_fraction"].get<double>();
      GptqReport report;
      CompressedTensor q = quantize_gptq(w.as<float>(), rows, cols, *st, o, cancel_, name, &report);
      if (report.percdamp != o.percdamp)  // the run log shows it with the layer's scheme
        note_ = "damp raised to " + std::to_string(report.percdamp) + " (Hessian not positive definite)";
      return q;
    }
    if (a == "kmeans") {
      KmeansOptions o;
      o.bits = p_["bits"].get<int>();
      o.iterations = p_["iterations"].get<int>();
      o.group_size = p_["group_size"].get<int>();
      return quantize_kmeans(w.as<float>(), rows, cols, o, st->sq_norm.data(), cancel_, name);
    }
    if (a == "magnitude") return magnitude_prune(w, {sparsity_target(p_), prune_scope(p_)}, cancel_);
    if (a == "wanda") return wanda_prune(w, *st, {sparsity_target(p_), prune_scope(p_)}, cancel_);
    if (a == "sparsegpt") {
      SparseGptOptions o;
      o.target = sparsity_target(p_);
      o.damp = p_["damp"].get<double>();
      o.block_size = p_["block_size"].get<int64_t>();
      if (const int b = p_["quantize_bits"].get<int>(); b > 0) o.quantize = rtn_quantizer(w, b, 0);
      return sparsegpt_prune(w, *st, o, cancel_);
    }
    if (a == "svd") {
      LowRankOptions o;
      o.rank = p_["rank"].get<int64_t>();
      o.energy = p_["energy"].get<double>();
      o.activation_aware = p_["activation_aware"].get<bool>();
      return low_rank(w, o, o.activation_aware ? st : nullptr, cancel_);
    }
    stage_error(r_, i_, "has no compressor");  // pre-flight refuses these earlier
  }

  void store(const std::string& name, Tensor& w, CompressedTensor c, const LayerStats* st) {
    c.name = name;
    Tensor q = c.dequantize();
    const double err = relative_error(w, q, st);
    record(name, std::move(c), err, st != nullptr);
    q.set_name(name);
    w = std::move(q);
  }

  void record(const std::string& name, CompressedTensor c, double err, bool on_acts) {
    c.name = name;
    const uint64_t bits = c.storage_bits();
    const double bpw = c.bits_per_weight();
    std::string scheme = c.describe();
    if (!note_.empty()) scheme += "; " + note_, note_.clear();
    CompressedLayer layer{std::move(c), s_.algorithm, err, on_acts, bits, bpw, std::move(scheme)};
    for (CompressedLayer& l : out_.layers)
      if (l.tensor.name == name) return void(l = std::move(layer));  // a later stage wins
    out_.layers.push_back(std::move(layer));
  }

  const Recipe& r_;
  size_t i_;
  const RecipeStage& s_;
  const json& p_;

 public:
  RecordWeightFn recorder() {
    return [this](const std::string& n, CompressedTensor c, double err, bool on_acts) {
      record(n, std::move(c), err, on_acts);
    };
  }

 private:
  LlamaModel& model_;
  CompressionResult& out_;
  const CancelToken* cancel_;
  std::string note_;  // for the next recorded layer's scheme
};

}  // namespace

DType calibration_activation_dtype(const LlamaModel& model, CompressOptions::Activations choice) {
  const bool sixteen = !model.layers.empty() && model.layers[0].wq.dtype() != DType::F32;
  using A = CompressOptions::Activations;
  return choice == A::BF16 || (choice == A::Auto && sixteen) ? DType::BF16 : DType::F32;
}

bool recipe_needs_calibration(const Recipe& recipe) {
  for (const RecipeStage& s : recipe.stages)
    if (needs_stats(s)) return true;
  return false;
}

CompressionResult compress_llama(const LlamaModel& base, const Recipe& recipe,
                                 std::span<const int32_t> calib_tokens, const CompressOptions& opt,
                                 const ProgressFn& progress, const CancelToken* cancel) {
  const auto t0 = std::chrono::steady_clock::now();
  CompressionResult out;
  // Views of the model's file stay views until a compressor needs a weight in f32
  // (find_weight_f32, one at a time); owned tensors (norms, biases, a model built in
  // memory) are copied, since stages change some in place.
  out.model = base;
  for (auto& [name, t] : out.model.named_tensors())
    if (t->writable()) *t = t->f32_copy();
  CalibrationOptions calib_opt;
  calib_opt.activations = calibration_activation_dtype(base, opt.activations);
  calib_opt.memory_budget = opt.activation_budget;
  calib_opt.scratch_dir = opt.scratch_dir;

  std::vector<std::string> linear_names;
  for (const LinearGroup& g : linear_groups(out.model))
    linear_names.insert(linear_names.end(), g.names.begin(), g.names.end());

  const int64_t windows = recipe.calibration.value("windows", opt.calib_windows);
  const int64_t window = recipe.calibration.value("window", opt.calib_window);
  const auto calib = calibration_windows(calib_tokens, windows, window);

  // Pre-flight: every problem a stage would hit surfaces before any weight is touched. The
  // shapes a stage sees are those the structured stages before it leave.
  LlamaConfig shape = out.model.cfg;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const RecipeStage& s = recipe.stages[i];
    const auto names = stage_tensors(s, linear_names);
    if (names.empty()) stage_error(recipe, i, "its targets match no linear weight");
    if (needs_stats(s) && calib.empty()) stage_error(recipe, i, "needs calibration text, and none was given");
    if (is_structured(s)) {
      check_structured(recipe, i, shape, {names.begin(), names.end()});
      shape = structured_config(shape, structured_options(s));
    }
    const int64_t g = s.params.value("group_size", 0);
    for (const std::string& n : names)
      if (g > 0 && in_features(shape, n) % g)
        stage_error(recipe, i, "group_size " + std::to_string(g) + " does not divide the " +
                                   std::to_string(in_features(shape, n)) + " input columns of " + n);
  }

  // A resumed run: the shapes the done structured stages left, then what was done.
  size_t first_stage = 0;
  int64_t first_block = 0;
  if (opt.resume) {
    first_stage = opt.resume->stage, first_block = opt.resume->next_block;
    if (first_stage > recipe.stages.size() || first_block < 0 || first_block >= out.model.cfg.n_layers ||
        (first_block > 0 && first_stage == recipe.stages.size()))
      throw Error(recipe.source, "cannot resume at stage " + std::to_string(first_stage + 1) + ", block " +
                                     std::to_string(first_block) + ": the recipe has no such point");
    if (first_block > 0 && is_structured(recipe.stages[first_stage]))
      stage_error(recipe, first_stage, "a whole-model stage cannot resume part-way");
    for (size_t i = 0; i < first_stage; ++i)
      if (is_structured(recipe.stages[i]))
        out.model.cfg = structured_config(out.model.cfg, structured_options(recipe.stages[i]));
    if (opt.resume->restore) opt.resume->restore(out);
  }

  for (size_t i = first_stage; i < recipe.stages.size(); ++i) {
    const RecipeStage& s = recipe.stages[i];
    const auto names = stage_tensors(s, linear_names);
    const std::set<std::string> targeted(names.begin(), names.end());
    StageRunner runner(recipe, i, out.model, out, cancel);
    const int64_t start = i == first_stage ? first_block : 0;
    CalibrationOptions co = calib_opt;  // a resumed stage starts from its saved block inputs
    co.forward = &out.calibration_forward;
    co.start_layer = start;
    if (start > 0) co.start_hidden = opt.resume->hidden_path;
    auto block_done = [&](int64_t layer, bool resumable = true, const ActivationStore* hidden = nullptr) {
      if (opt.block_done) opt.block_done({i, recipe.stages.size(), layer, resumable, hidden}, out);
    };
    const std::string stage = "stage " + std::to_string(i + 1) + "/" +
                              std::to_string(recipe.stages.size()) + " " + s.algorithm;
    // The fraction is of the whole recipe, so that a bar (and its ETA) never goes back
    // when the next stage starts.
    const double stages = double(recipe.stages.size());
    auto overall = [&](double f) { return (double(i) + f) / stages; };
    auto relay = [&](const ProgressEvent& e) { report(progress, stage, e.item, overall(e.fraction)); };
    // A structured stage slices every block at once and hands them over at the end.
    auto all_blocks_done = [&] {
      const int64_t n = out.model.cfg.n_layers;
      for (int64_t l = 0; l < n; ++l) block_done(l, l == n - 1);
    };
    if (is_structured(s)) {
      materialize_f32(out.model);  // slices every layer's weights
      run_structured_stage(out.model, structured_options(s), calib, runner.recorder(), relay, cancel);
      all_blocks_done();
    } else if (s.algorithm == "smoothquant") {
      SmoothQuantStageOptions o;
      o.alpha = s.params["alpha"].get<float>();
      run_smoothquant_stage(out.model, o, targeted, calib, runner.recorder(), relay, cancel, co,
                            [&](int64_t l, const ActivationStore& hidden) { block_done(l, true, &hidden); });
    } else if (!needs_stats(s)) {
      // Names come in model order: a block is done when the next name is in a later one.
      int64_t next_block = start;
      for (size_t k = 0; k < names.size(); ++k) {
        if (cancel) cancel->throw_if_cancelled();
        const int64_t l = layer_of(names[k]);
        if (l < start) continue;
        for (; next_block < l; ++next_block) block_done(next_block);
        runner.compress_one(names[k], nullptr);
        report(progress, stage, names[k], overall(double(k + 1) / double(names.size())));
      }
      for (; next_block < out.model.cfg.n_layers; ++next_block) block_done(next_block);
    } else {
      std::map<std::string, GroupData> data;  // keyed by the group's first name
      const bool gram = calibration_need(s.algorithm, s.params) == CalibrationNeed::Gram;
      CalibrationHooks hooks;
      auto wanted = [&](const LinearGroup& g) {
        for (const std::string& n : g.names)
          if (targeted.count(n)) return true;
        return false;
      };
      hooks.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
        if (!wanted(g)) return;
        GroupData& d = data[g.names.front()];
        if (d.stats.cols == 0) d.stats = make_layer_stats(g.in_features, gram);
        accumulate(d.stats, x, rows);
        // AWQ's search runs on whole windows (attention mixes a window's tokens), the
        // first ones up to search_tokens (0: all).
        const int64_t cap = s.algorithm == "awq" ? s.params["search_tokens"].get<int64_t>() : -1;
        if (cap >= 0 && (cap == 0 || d.sample_rows == 0 || d.sample_rows + rows <= cap)) {
          d.samples.insert(d.samples.end(), x, x + rows * g.in_features);
          d.sample_windows.push_back(rows);
          d.sample_rows += rows;
        }
      };
      hooks.compress = [&](const LinearGroup& g) {
        if (!wanted(g)) return;
        GroupData& d = data[g.names.front()];
        std::vector<std::string> mine;
        for (const std::string& n : g.names)
          if (targeted.count(n)) mine.push_back(n);
        if (s.algorithm == "awq") runner.compress_awq(g.layer, mine, d);
        else
          for (const std::string& n : mine) runner.compress_one(n, &d.stats);
        data.erase(g.names.front());  // the statistics of a finished group are not needed again
      };
      hooks.block_done = [&](int64_t l, const ActivationStore& hidden) { block_done(l, true, &hidden); };
      co.uncompressed_inputs = s.algorithm == "awq" && s.params["inputs"].get<std::string>() == "dense";
      sequential_calibrate(out.model, calib, hooks, relay, cancel, co);
    }
  }

  // Accounting: compressed linears as stored, everything else at 16 bits.
  std::map<std::string, CompressedLayer*> by_name;
  for (CompressedLayer& l : out.layers) by_name[l.tensor.name] = &l;
  for (const auto& [name, t] : out.model.named_tensors()) {
    const uint64_t n = uint64_t(t->numel());
    out.parameters += n;
    out.original_bits += 16 * n;
    auto it = by_name.find(name);
    out.storage_bits += it == by_name.end() ? 16 * n : it->second->storage_bits;
  }
  // Keep the model's tensor order for the layer list.
  std::vector<CompressedLayer> ordered;
  for (const auto& [name, t] : out.model.named_tensors())
    if (auto it = by_name.find(name); it != by_name.end())
      ordered.push_back(std::move(*it->second));
  out.layers = std::move(ordered);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace mcw
