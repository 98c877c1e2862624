#include "engine/compress/flap_stage.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "engine/compress/algorithm.h"
#include "engine/compress/algorithm_params.h"
#include "engine/compress/calibrate.h"
#include "engine/compress/structured_model.h"
#include "engine/core/error.h"
#include "engine/model/llama_tensors.h"

namespace mcw {

namespace {

// (x − mean) / std over one layer's values, the std with n − 1 (torch.std's default).
std::vector<double> standardized(std::vector<double> x) {
  const double n = double(x.size());
  double mean = 0, ss = 0;
  for (double v : x) mean += v;
  mean /= n;
  for (double v : x) ss += (v - mean) * (v - mean);
  const double sd = x.size() > 1 ? std::sqrt(ss / (n - 1)) : 0.0;
  for (double& v : x) v = sd > 0 ? (v - mean) / sd : 0.0;
  return x;
}

struct Unit {
  double score;
  bool head;
  size_t layer;
  int64_t index;
};

// Rounds each layer's kept channel count to the nearest multiple of m (at least m, at most
// the largest multiple the layer has): the best-scored removed channels come back, or the
// worst-scored kept ones go.
void round_kept_channels(const std::vector<Unit>& units, std::vector<std::vector<int64_t>>& removed,
                         const std::vector<size_t>& all, size_t m) {
  for (size_t l = 0; l < removed.size(); ++l) {
    const size_t kept = all[l] - removed[l].size();
    const size_t top = all[l] >= m ? all[l] / m * m : all[l];
    const size_t want = std::clamp((kept + m / 2) / m * m, std::min(m, top), top);
    std::vector<const Unit*> ranked;  // the layer's channels, best first
    for (const Unit& u : units)
      if (!u.head && u.layer == l) ranked.push_back(&u);
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const Unit* x, const Unit* y) { return x->score > y->score; });
    removed[l].clear();
    for (size_t i = want; i < ranked.size(); ++i) removed[l].push_back(ranked[i]->index);
    std::sort(removed[l].begin(), removed[l].end());
  }
}

}  // namespace

FlapAllocation flap_global_allocation(const std::vector<std::vector<double>>& attention,
                                      const std::vector<std::vector<double>>& mlp,
                                      int64_t unit_width, double unit_weight, double fraction,
                                      bool keep_one, int64_t channel_multiple) {
  const size_t layers = attention.size();
  if (mlp.size() != layers)
    throw Error("flap", "attention and MLP metrics cover different layer counts");
  std::vector<Unit> units;
  for (size_t l = 0; l < layers; ++l) {
    std::vector<double> sq = attention[l];
    for (double& v : sq) v *= v;  // the reference squares o_proj's metric
    const std::vector<double> z = standardized(std::move(sq));
    if (unit_width <= 0 || z.size() % size_t(unit_width))
      throw Error("flap", "layer " + std::to_string(l) + ": " + std::to_string(z.size()) +
                              " attention channels do not split into heads of " +
                              std::to_string(unit_width));
    for (size_t u = 0; u < z.size() / size_t(unit_width); ++u) {
      double mean = 0;
      for (size_t j = u * size_t(unit_width); j < (u + 1) * size_t(unit_width); ++j) mean += z[j];
      units.push_back({mean / double(unit_width), true, l, int64_t(u)});
    }
    const std::vector<double> zm = standardized(mlp[l]);
    for (size_t j = 0; j < zm.size(); ++j) units.push_back({zm[j], false, l, int64_t(j)});
  }
  if (channel_multiple < 1) throw Error("flap", "channel_multiple must be at least 1");
  FlapAllocation a;
  a.heads.resize(layers), a.channels.resize(layers);
  if (units.empty()) return a;
  // Ranked from the most important; the threshold is the unit where the running sum of kept
  // weight comes closest to (1 − fraction) of the total (the first such unit), and only
  // units scoring above it stay (so it goes itself, as in the reference).
  std::vector<size_t> order(units.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return units[x].score > units[y].score; });
  auto weight = [&](const Unit& u) { return u.head ? unit_weight : 1.0; };
  double total = 0;
  for (const Unit& u : units) total += weight(u);
  const double target = total * (1 - fraction);
  double run = 0, best = INFINITY;
  size_t at = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    run += weight(units[order[i]]);
    if (std::fabs(run - target) < best) best = std::fabs(run - target), at = i;
  }
  const double threshold = units[order[at]].score;
  // keep_one: a layer whose units all fall keeps its best one.
  std::vector<const Unit*> best_head(layers, nullptr), best_channel(layers, nullptr);
  std::vector<size_t> heads_in(layers, 0), channels_in(layers, 0);
  for (const Unit& u : units) {
    const Unit*& b = u.head ? best_head[u.layer] : best_channel[u.layer];
    if (!b || u.score > b->score) b = &u;
    ++(u.head ? heads_in : channels_in)[u.layer];
  }
  for (const Unit& u : units)
    if (!(u.score > threshold)) (u.head ? a.heads : a.channels)[u.layer].push_back(u.index);
  for (size_t l = 0; l < layers && keep_one; ++l) {
    auto spare = [](std::vector<int64_t>& removed, size_t all, const Unit* b) {
      if (b && removed.size() == all)
        removed.erase(std::find(removed.begin(), removed.end(), b->index));
    };
    spare(a.heads[l], heads_in[l], best_head[l]);
    spare(a.channels[l], channels_in[l], best_channel[l]);
  }
  if (channel_multiple > 1)
    round_kept_channels(units, a.channels, channels_in, size_t(channel_multiple));
  return a;
}

double flap_unit_weight(const LlamaConfig& c) {
  const HeadUnits u = head_units(c, 0);
  const double q = double(u.q_width(c)), kv = u.with_kv ? double(c.head_dim) : 0.0;
  return (2 * q + 2 * kv) / 3.0;
}

FlapAllocation run_flap_stage(LlamaModel& model, const FlapOptions& o,
                              const std::vector<std::vector<int32_t>>& windows,
                              const RecordWeightFn& record, const ProgressFn& progress,
                              const CancelToken* cancel, const CalibrationOptions& calibration,
                              const std::function<void(int64_t)>& block_done) {
  const LlamaConfig c = model.cfg;
  const size_t n = size_t(c.n_layers);
  const int64_t unit_width = head_units(c, 0).q_width(c);
  std::vector<std::optional<ChannelMoments>> attn(n), mlp(n);
  std::vector<std::vector<double>> attn_metric(n), mlp_metric(n);
  auto slot = [&](const LinearGroup& g) -> std::optional<ChannelMoments>* {
    if (g.input == kActInt8O) return &attn[size_t(g.layer)];
    if (g.input == kActInt8Down) return &mlp[size_t(g.layer)];
    return nullptr;
  };
  CalibrationHooks hooks;
  hooks.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
    std::optional<ChannelMoments>* s = slot(g);
    if (!s) return;
    if (!*s) s->emplace(g.in_features);
    (*s)->add(x, rows);
  };
  hooks.compress = [&](const LinearGroup& g) {  // nothing changes: statistics of the dense model
    std::optional<ChannelMoments>* s = slot(g);
    if (!s) return;
    (g.input == kActInt8O ? attn_metric : mlp_metric)[size_t(g.layer)] =
        channel_importance(*find_weight(model, g.names.front()), **s, StructuredScore::Flap);
  };
  CalibrationOptions co = calibration;
  co.start_layer = 0, co.start_hidden.clear(), co.end_layer = -1;
  sequential_calibrate(model, windows, hooks, progress, cancel, co);

  const FlapAllocation a =
      flap_global_allocation(attn_metric, mlp_metric, unit_width, flap_unit_weight(c), o.fraction,
                             o.keep_one, o.channel_multiple);
  if (o.compensate) model.cfg.o_bias = model.cfg.down_bias = true;
  for (size_t l = 0; l < n; ++l) {
    if (cancel) cancel->throw_if_cancelled();
    const int64_t layer = int64_t(l);
    materialize_layer_f32(model, layer);
    LlamaLayer& L = model.layers[l];
    auto bias = [&](Tensor& b, BlockRole role) -> Tensor* {
      if (!o.compensate) return nullptr;
      if (b.empty())
        b = Tensor::zeros(DType::F32, {c.dim}, block_tensor_name(layer, block_tensor(role)));
      return &b;
    };
    const std::vector<int64_t> head_channels = unit_channels(a.heads[l], unit_width);
    std::vector<SlicedWeight> changed;
    auto share = [&](BlockRole role, const std::vector<int64_t>& units, int64_t width) {
      const BlockTensor& t = block_tensor(role);
      changed.push_back(
          {block_tensor_name(layer, t), removed_rows_share(L.*t.member, units, width)});
    };
    share(BlockRole::Q, a.heads[l], unit_width);
    if (head_units(c, layer).with_kv)
      share(BlockRole::K, a.heads[l], c.head_dim), share(BlockRole::V, a.heads[l], c.head_dim);
    share(BlockRole::Gate, a.channels[l], 1), share(BlockRole::Up, a.channels[l], 1);
    changed.push_back({block_tensor_name(layer, block_tensor(BlockRole::O)),
                       removal_relative_error(L.wo, head_channels, *attn[l]), true});
    changed.push_back({block_tensor_name(layer, block_tensor(BlockRole::Down)),
                       removal_relative_error(L.w_down, a.channels[l], *mlp[l]), true});
    mask_input_channels(L.wo, bias(L.bo, BlockRole::OBias), head_channels, *attn[l]);
    mask_input_channels(L.w_down, bias(L.b_down, BlockRole::DownBias), a.channels[l], *mlp[l]);
    remove_layer_heads(model, layer, a.heads[l]);
    remove_layer_channels(model, layer, a.channels[l]);
    attn[l].reset(), mlp[l].reset();
    report_sliced_block(model, layer, changed, record);
    if (block_done) block_done(layer);
  }
  return a;
}

// The recipe's "flap" (algorithm.h).
namespace {

FlapOptions options(const nlohmann::json& p) {
  FlapOptions o;
  o.fraction = p["fraction"].get<double>();
  o.keep_one = p["keep_one"].get<bool>();
  o.channel_multiple = p["channel_multiple"].get<int64_t>();
  return o;
}

void run_stage(StageJob& job) {
  const int64_t n = job.model.cfg.n_layers;
  run_flap_stage(job.model, options(job.params), job.windows, job.record, job.progress, job.cancel,
                 job.calibration, [&](int64_t l) { job.block_done(l, l == n - 1, nullptr); });
}

// Each layer's widths are known only after calibration: later stages' pre-flight sees the
// widths before the stage (upper bounds), and a resumed run takes them from its checkpoint.
LlamaConfig reshape(const LlamaConfig& c, const nlohmann::json&) { return c; }
// MLP widths are multiples of channel_multiple, o_proj's inputs of a head unit's width.
int64_t width_multiple(const nlohmann::json& p, const LlamaConfig& c, Width w) {
  if (w == Width::Hidden) return p["channel_multiple"].get<int64_t>();
  return w == Width::Q ? head_units(c, 0).q_width(c) : 0;
}

std::string refuse(const nlohmann::json& p, const LlamaConfig& c,
                   const std::set<std::string>& targeted) {
  if (!c.llama_block())
    return "prunes llama's block (RMSNorm, rotary positions, a gated MLP); a " + c.model_type +
           " block is not supported (its files hold neither fewer heads nor widths per block)";
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (BlockRole role : {BlockRole::O, BlockRole::Down})
      if (!targeted.count(block_tensor_name(l, block_tensor(role))))
        return "must target the o_proj and down_proj of every layer (the allocation is over the "
               "whole model); " +
               block_tensor_name(l, block_tensor(role)) + " is not targeted";
  if (!(p["fraction"].get<double>() > 0)) return "fraction 0 removes nothing";
  return {};
}

// The sliced weights of one block are dense f32 while it is sliced.
LayerCost flap_cost(const nlohmann::json&, const CostShape& s) {
  const double n = s.rows * s.cols;
  return {4 * n, algo::per_weight_work_bytes(s.rows, s.cols), 10 * n};
}

}  // namespace

CompressAlgorithm flap_algorithm() {
  using namespace algo;
  return {
      .name = "flap",
      .kind = "structured",
      .help = "remove heads and MLP channels, allocated across layers (FLAP's AL-AM)",
      .params =
          {number("fraction", 0.2, 0.0, 0.95,
                  "share of the blocks' attention and MLP weights removed (FLAP's pruning ratio)"),
           flag("keep_one", true,
                "keep every layer's best head and channel (the reference may remove them all)"),
           integer("channel_multiple", 1, 1, 4096,
                   "round each layer's kept MLP channels to a multiple of this (a later "
                   "stage's group size; 1: the reference)")},
      .needs = needs_own_pass,
      .run_stage = run_stage,
      .reshape = reshape,
      .width_multiple = width_multiple,
      .refuse = refuse,
      .cost = flap_cost};
}

}  // namespace mcw
