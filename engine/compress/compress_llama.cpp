#include "engine/compress/compress_llama.h"

#include <chrono>
#include <map>
#include <memory>
#include <set>

#include "engine/compress/algorithm.h"
#include "engine/compress/calibrate.h"
#include "engine/compress/layer_error.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/core/error.h"
#include "engine/model/llama_tensors.h"

namespace mcw {

namespace {

using json = nlohmann::json;

[[noreturn]] void stage_error(const Recipe& r, size_t i, const std::string& what) {
  const RecipeStage& s = r.stages[i];
  throw Error(r.source, (s.line ? "line " + std::to_string(s.line) + ": " : std::string()) + "stage " +
                            std::to_string(i + 1) + " (" + s.algorithm + "): " + what);
}

const CompressAlgorithm& algorithm_of(const RecipeStage& s) {
  const CompressAlgorithm* a = find_algorithm(s.algorithm);
  if (!a) throw Error("recipe", "unknown algorithm '" + s.algorithm + "'");  // the parser refuses it first
  return *a;
}

bool needs_stats(const RecipeStage& s) { return algorithm_of(s).needs(s.params) != CalibrationNeed::None; }

// The decoder block of a linear's name.
int64_t layer_of(const std::string& name) {
  int64_t layer = -1;
  find_block_tensor(name, &layer);
  return layer;
}

// Input columns of a linear under config `c` (shapes change with structured stages).
int64_t in_features(const LlamaConfig& c, const std::string& name) {
  int64_t layer = 0;
  const BlockTensor* t = find_block_tensor(name, &layer);
  return t ? width(c, t->cols, layer) : 0;
}

struct GroupData {
  LayerStats stats;
  std::vector<float> samples;  // whole calibration windows of the input, in order
  std::vector<int64_t> sample_windows;  // their row counts
  int64_t sample_rows = 0;
};

// Runs one stage's algorithm on the linears it targets and records what each became.
class StageRunner {
 public:
  StageRunner(const RecipeStage& s, LlamaModel& model, CompressionResult& out, const CancelToken* cancel)
      : s_(s), a_(algorithm_of(s)), model_(model), out_(out), cancel_(cancel) {}

  void compress_one(const std::string& name, const LayerStats* stats) {
    Tensor* w = find_weight_f32(model_, name);
    LayerJob job{.w = *w, .name = name, .stats = stats, .params = s_.params, .cancel = cancel_, .note = {}};
    CompressedTensor c = a_.compress_layer(job);
    c.name = name;
    replace(name, *w, std::move(c), stats, job.note);
  }

  void compress_group(int64_t layer, const std::vector<std::string>& names, const GroupData& g) {
    GroupJob job{.model = model_, .layer = layer, .names = names, .stats = g.stats,
                 .samples = g.samples.data(), .sample_rows = g.sample_rows,
                 .sample_windows = g.sample_windows, .params = s_.params, .cancel = cancel_};
    std::vector<CompressedTensor> out = a_.compress_group(job);
    for (size_t k = 0; k < names.size(); ++k) replace(names[k], *find_weight_f32(model_, names[k]), std::move(out[k]), &g.stats, {});
  }

  RecordWeightFn recorder() {
    return [this](const std::string& n, CompressedTensor c, double err, bool on_acts) {
      record(n, std::move(c), err, on_acts, {});
    };
  }

 private:
  // The model's weight becomes what the compressed tensor decodes to.
  void replace(const std::string& name, Tensor& w, CompressedTensor c, const LayerStats* st,
               const std::string& note) {
    Tensor q = c.dequantize();
    const double err = layer_error(w.as<float>(), q.as<float>(), w.dim(0), w.dim(1), st).relative();
    record(name, std::move(c), err, st != nullptr, note);
    q.set_name(name);
    w = std::move(q);
  }

  void record(const std::string& name, CompressedTensor c, double err, bool on_acts, const std::string& note) {
    c.name = name;
    const uint64_t bits = c.storage_bits();
    const double bpw = c.bits_per_weight();
    std::string scheme = c.describe();
    if (!note.empty()) scheme += "; " + note;
    CompressedLayer layer{std::move(c), s_.algorithm, err, on_acts, bits, bpw, std::move(scheme)};
    for (CompressedLayer& l : out_.layers)
      if (l.tensor.name == name) return void(l = std::move(layer));  // a later stage wins
    out_.layers.push_back(std::move(layer));
  }

  const RecipeStage& s_;
  const CompressAlgorithm& a_;
  LlamaModel& model_;
  CompressionResult& out_;
  const CancelToken* cancel_;
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
  if (!recipe.activations.empty())
    throw Error(recipe.source,
                "'activations' (static per-tensor activation quantisation) applies to ONNX "
                "models; for a transformer use the smoothquant stage (dynamic per-token int8)");
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
  // The last stage that leaves widths known only as multiples (and what it saw).
  const CompressAlgorithm* open_widths = nullptr;
  const nlohmann::json* open_params = nullptr;
  LlamaConfig open_shape;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const RecipeStage& s = recipe.stages[i];
    const auto names = stage_tensors(s, linear_names);
    if (names.empty()) stage_error(recipe, i, "its targets match no linear weight");
    if (needs_stats(s) && calib.empty()) stage_error(recipe, i, "needs calibration text, and none was given");
    const CompressAlgorithm& a = algorithm_of(s);
    if (a.refuse)
      if (const std::string why = a.refuse(s.params, shape, {names.begin(), names.end()}); !why.empty())
        stage_error(recipe, i, why);
    if (a.reshape) shape = a.reshape(shape, s.params);
    const int64_t g = s.params.value("group_size", 0);
    for (const std::string& n : names) {
      if (g <= 0) continue;
      const BlockTensor* t = find_block_tensor(n);
      const int64_t m =
          open_widths && t ? open_widths->width_multiple(*open_params, open_shape, t->cols) : 0;
      if (m > 0) {  // a width not known yet
        if (m % g)
          stage_error(recipe, i,
                      "group_size " + std::to_string(g) + " does not divide the input widths of " +
                          n + " an earlier stage leaves (multiples of " + std::to_string(m) + ")");
      } else if (in_features(shape, n) % g) {
        stage_error(recipe, i, "group_size " + std::to_string(g) + " does not divide the " +
                                   std::to_string(in_features(shape, n)) + " input columns of " + n);
      }
    }
    if (a.width_multiple) open_widths = &a, open_params = &s.params, open_shape = shape;
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
    if (first_block > 0 && first_stage < recipe.stages.size() && algorithm_of(recipe.stages[first_stage]).reshape)
      stage_error(recipe, first_stage, "a whole-model stage cannot resume part-way");
    for (size_t i = 0; i < first_stage; ++i)
      if (const auto reshape = algorithm_of(recipe.stages[i]).reshape)
        out.model.cfg = reshape(out.model.cfg, recipe.stages[i].params);
    if (opt.resume->restore) opt.resume->restore(out);
  }

  for (size_t i = first_stage; i < recipe.stages.size(); ++i) {
    const RecipeStage& s = recipe.stages[i];
    const auto names = stage_tensors(s, linear_names);
    const std::set<std::string> targeted(names.begin(), names.end());
    const CompressAlgorithm& a = algorithm_of(s);
    StageRunner runner(s, out.model, out, cancel);
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
    if (a.run_stage) {
      StageJob job{.model = out.model, .params = s.params, .targeted = targeted, .windows = calib,
                   .record = runner.recorder(), .progress = relay, .cancel = cancel, .calibration = co,
                   .block_done = block_done};
      a.run_stage(job);
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
      const bool gram = a.needs(s.params) == CalibrationNeed::Gram;
      // Whole windows (attention mixes a window's tokens), the first ones up to the cap.
      const int64_t cap = a.sample_tokens ? a.sample_tokens(s.params) : -1;
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
        if (a.compress_group) runner.compress_group(g.layer, mine, d);
        else
          for (const std::string& n : mine) runner.compress_one(n, &d.stats);
        data.erase(g.names.front());  // the statistics of a finished group are not needed again
      };
      hooks.block_done = [&](int64_t l, const ActivationStore& hidden) { block_done(l, true, &hidden); };
      co.uncompressed_inputs = a.uncompressed_inputs && a.uncompressed_inputs(s.params);
      // The pass stops after the stage's last targeted block (a one-layer recipe of block
      // 0 runs one block, not the model); the blocks after it are final as they are, and
      // a run resumed among them has nothing left to calibrate.
      int64_t last = 0;
      for (const std::string& n : names) last = std::max(last, layer_of(n));
      co.end_layer = last + 1;
      if (start <= last) sequential_calibrate(out.model, calib, hooks, relay, cancel, co);
      for (int64_t l = std::max(start, last + 1); l < out.model.cfg.n_layers; ++l) block_done(l);
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
