#include "engine/compress/structured_stage.h"

#include <optional>

#include "engine/compress/algorithm_params.h"
#include "engine/compress/calibrate.h"
#include "engine/compress/structured_model.h"
#include "engine/model/llama_tensors.h"

namespace mcw {

std::vector<int64_t> structured_removal_counts(const LlamaConfig& c,
                                               const StructuredStageOptions& o) {
  std::vector<int64_t> n;
  for (int64_t l = 0; l < c.n_layers; ++l)
    n.push_back(units_to_remove(o.heads ? head_units(c, l).count : c.hidden_dim_of(l), o.fraction));
  return n;
}

LlamaConfig structured_config(const LlamaConfig& c, const StructuredStageOptions& o) {
  const std::vector<int64_t> r = structured_removal_counts(c, o);
  return o.heads ? config_without_heads(c, r) : config_without_channels(c, r);
}

namespace {
bool removes_any(const std::vector<int64_t>& counts) {
  for (int64_t n : counts)
    if (n > 0) return true;
  return false;
}
}  // namespace

namespace {

}  // namespace

void report_sliced_block(LlamaModel& model, int64_t layer, const std::vector<SlicedWeight>& changed,
                         const RecordWeightFn& record) {
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  for (auto& [name, t] : model.named_tensors())
    if (name.starts_with(prefix)) t->set_name(name);
  if (record)
    for (const SlicedWeight& w : changed)
      record(w.name, dense_tensor(*find_weight(model, w.name), w.name), w.error, w.on_activations);
}

std::vector<std::vector<int64_t>> run_structured_stage(
    LlamaModel& model, const StructuredStageOptions& o,
    const std::vector<std::vector<int32_t>>& windows, const RecordWeightFn& record,
    const ProgressFn& progress, const CancelToken* cancel, const CalibrationOptions& calibration,
    const std::function<void(int64_t layer)>& block_done) {
  const LlamaConfig c = model.cfg;
  const std::vector<int64_t> count = structured_removal_counts(c, o);
  // Input channels per unit: a unit's query heads are as many in every layer.
  const int64_t width = o.heads ? head_units(c, 0).q_width(c) : 1;
  const uint8_t target = o.heads ? kActInt8O : kActInt8Down;  // the input whose channels go
  std::vector<std::vector<int64_t>> removed(size_t(c.n_layers));
  std::vector<SlicedWeight> changed;      // of the block being calibrated
  std::optional<ChannelMoments> moments;  // of the block being calibrated
  if (!removes_any(count)) {
    for (int64_t l = 0; l < c.n_layers && block_done; ++l) block_done(l);
    return removed;
  }
  // Every layer gets the bias (compensation); the flag holds from the first block written.
  if (o.compensate) (o.heads ? model.cfg.o_bias : model.cfg.down_bias) = true;

  auto is_target = [&](const LinearGroup& g) { return g.input == target; };
  CalibrationHooks hooks;
  hooks.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
    if (!is_target(g)) return;
    if (!moments) moments.emplace(g.in_features);
    moments->add(x, rows);
  };
  hooks.compress = [&](const LinearGroup& g) {
    if (!is_target(g)) return;
    const size_t l = size_t(g.layer);
    materialize_layer_f32(model, g.layer);  // the block's weights only, not the model's
    LlamaLayer& L = model.layers[l];
    Tensor& w = o.heads ? L.wo : L.w_down;
    Tensor& bias = o.heads ? L.bo : L.b_down;
    const std::vector<double> score = unit_importance(
        channel_importance(w, *moments, o.score), width,
        o.heads && o.score == StructuredScore::Flap && o.square_head_scores);
    removed[l] = least_important(score, count[l]);
    const std::vector<int64_t> channels = unit_channels(removed[l], width);
    changed = {{g.names.front(), removal_relative_error(w, channels, *moments), true}};
    // The projections whose output rows feed the removed channels lose those rows.
    auto row_sliced = [&](BlockRole role, int64_t unit_rows) {
      const BlockTensor& t = block_tensor(role);
      changed.push_back(
          {block_tensor_name(g.layer, t), removed_rows_share(L.*t.member, removed[l], unit_rows)});
    };
    if (o.heads) {
      row_sliced(BlockRole::Q, width);
      if (head_units(c, g.layer).with_kv)
        row_sliced(BlockRole::K, c.head_dim), row_sliced(BlockRole::V, c.head_dim);
    } else {
      if (c.gated_mlp()) row_sliced(BlockRole::Gate, 1);
      row_sliced(BlockRole::Up, 1);
    }
    if (o.compensate && bias.empty())
      bias = Tensor::zeros(DType::F32, {c.dim},
                           block_tensor_name(g.layer, block_tensor(o.heads ? BlockRole::OBias : BlockRole::DownBias)));
    mask_input_channels(w, o.compensate ? &bias : nullptr, channels, *moments);
    moments.reset();
  };
  // A block is sliced (and handed on) as soon as its outputs are formed: the masked block
  // computed them, which the sliced one computes too.
  hooks.block_done = [&](int64_t l, const ActivationStore&) {
    if (o.heads)
      remove_layer_heads(model, l, removed[size_t(l)]);
    else
      remove_layer_channels(model, l, removed[size_t(l)]);
    report_sliced_block(model, l, changed, record);
    if (block_done) block_done(l);
  };
  CalibrationOptions co = calibration;
  co.start_layer = 0, co.start_hidden.clear(), co.end_layer = -1;
  co.uncompressed_inputs = o.uncompressed_inputs;
  sequential_calibrate(model, windows, hooks, progress, cancel, co);
  return removed;
}

// The recipe's "heads" and "channels" (algorithm.h).
namespace {

StructuredStageOptions stage_options(const nlohmann::json& p, bool heads) {
  StructuredStageOptions o;
  o.heads = heads;
  o.fraction = p["fraction"].get<double>();
  o.score = structured_score(p["score"].get<std::string>());
  const std::string inputs = p["inputs"].get<std::string>();
  o.uncompressed_inputs = inputs == "auto" ? o.score == StructuredScore::Flap : inputs == "dense";
  if (heads) o.square_head_scores = p["square_scores"].get<bool>();
  return o;
}

// Each block is made f32, sliced and handed over as the pass leaves it; a stopped run
// resumes only after the last (the pass is not resumable part-way).
template <bool heads>
void run_stage(StageJob& job) {
  const int64_t n = job.model.cfg.n_layers;
  run_structured_stage(job.model, stage_options(job.params, heads), job.windows, job.record,
                       job.progress, job.cancel, job.calibration,
                       [&](int64_t l) { job.block_done(l, l == n - 1, nullptr); });
}

template <bool heads>
LlamaConfig reshape(const LlamaConfig& c, const nlohmann::json& p) {
  return structured_config(c, stage_options(p, heads));
}

// Every layer loses units: the targets must cover the o_proj (heads) or down_proj
// (channels) of every layer.
template <bool heads>
std::string refuse(const nlohmann::json& p, const LlamaConfig& c, const std::set<std::string>& targeted) {
  // GPT-2's file ties the head width to n_embd / n_head (transformers' GPT2Attention): no
  // file could hold a GPT-2 with fewer heads. Its MLP channels go like llama's (n_inner).
  if (heads && !c.llama_block())
    return "removes heads from llama's block; a " + c.model_type +
           " block is not supported (its files tie the head width to n_embd / n_head)";
  const BlockTensor& col_sliced = block_tensor(heads ? BlockRole::O : BlockRole::Down);
  const std::string what = col_sliced.hf;
  for (int64_t l = 0; l < c.n_layers; ++l)
    if (!targeted.count(block_tensor_name(l, col_sliced)))
      return "must target the " + what + " of every layer (every layer loses units); layer " +
             std::to_string(l) + " is not targeted";
  if (!removes_any(structured_removal_counts(c, stage_options(p, heads)))) {
    const HeadUnits u = head_units(c, 0);
    const int64_t units = heads ? u.count : c.hidden_dim_of(0);
    return "fraction " + p["fraction"].dump() + " of " + std::to_string(units) +
           (heads ? (u.with_kv ? " key/value head groups" : " heads") : " channels") + " removes nothing";
  }
  return {};
}

// The sliced weights stay dense f32.
LayerCost structured_cost(const nlohmann::json&, const CostShape& s) {
  const double n = s.rows * s.cols;
  return {4 * n, algo::per_weight_work_bytes(s.rows, s.cols), 10 * n};
}

template <bool heads>
CompressAlgorithm structured_algorithm() {
  using namespace algo;
  std::vector<ParamSpec> params = {
      number("fraction", 0.25, 0.0, 0.95,
             heads ? "share of heads removed per layer" : "share of intermediate channels removed"),
      choice("score", "flap", {"flap", "wanda"}, "importance score"),
      choice("inputs", "auto", {"auto", "dense", "compressed"},
             "statistics from the model before the stage (dense) or from the blocks already "
             "pruned; auto: as the score's reference (flap dense, wanda compressed)")};
  if (heads)
    params.push_back(flag("square_scores", true, "sum the squares of a head's channel scores (FLAP's code)"));
  return {.name = heads ? "heads" : "channels",
          .kind = "structured",
          .help = heads ? "remove attention heads (FLAP importance, bias compensation)"
                        : "remove MLP channels (FLAP importance, bias compensation)",
          .params = std::move(params),
          .needs = needs_own_pass,
          .run_stage = run_stage<heads>,
          .reshape = reshape<heads>,
          .refuse = refuse<heads>,
          .cost = structured_cost};
}

}  // namespace

CompressAlgorithm heads_algorithm() { return structured_algorithm<true>(); }
CompressAlgorithm channels_algorithm() { return structured_algorithm<false>(); }

}  // namespace mcw
