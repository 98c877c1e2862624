// The recipe's "awq" (algorithm.h): one AWQ search per group of linears sharing an input,
// scored as llm-awq scores it (awq.h), then round-to-nearest or GPTQ on the scaled weights.
#include <algorithm>
#include <memory>

#include "engine/compress/algorithm_params.h"
#include "engine/compress/awq.h"
#include "engine/compress/awq_gptq.h"
#include "engine/compress/calibrate.h"
#include "engine/model/llama_tensors.h"

namespace mcw {

namespace {

// The reference's module2inspect: q/k/v are scored by the attention's output (through
// o_proj) and gate/up by the MLP's (through down_proj), with the block's other weights as
// they are; o_proj and down_proj by their own output (an empty loss).
AwqModuleLoss module_loss(const GroupJob& job) {
  const BlockTensor* first = find_block_tensor(job.names.front());
  const bool attention = first && first->input == kActInt8Qkv;
  const bool mlp = first && first->input == kActInt8GateUp;
  if (!attention && !mlp) return {};
  LlamaModel& model = job.model;
  const int64_t layer = job.layer;
  // Runs the module on the sampled windows with the model's current weights.
  auto output = [&model, &job, layer, attention](std::vector<float>& y) {
    const LlamaConfig& c = model.cfg;
    const int64_t inner = attention ? c.q_dim(layer) : c.hidden_dim_of(layer);
    std::vector<float> mid;
    y.assign(size_t(job.sample_rows * c.dim), 0.0f);
    int64_t at = 0;
    for (int64_t rows : job.sample_windows) {
      mid.resize(size_t(rows * inner));
      const float* x = job.samples + at * c.dim;
      float* out = y.data() + at * c.dim;
      if (attention) {
        llama_attention_output(model, layer, x, rows, mid.data());
        llama_add_o_proj(model, layer, mid.data(), rows, out);
      } else {
        llama_mlp_hidden(model, layer, x, rows, mid.data());
        llama_add_down_proj(model, layer, mid.data(), rows, out);
      }
      at += rows;
    }
  };
  auto reference = std::make_shared<std::vector<float>>();
  output(*reference);
  return
      [&model, names = job.names, output, reference](const std::vector<const float*>& effective) {
        // The candidates stand in for the group's weights while the module runs.
        std::vector<std::pair<Tensor*, Tensor>> saved;
        for (size_t k = 0; k < names.size(); ++k) {
          Tensor* t = find_weight(model, names[k]);
          const int64_t n = t->numel();
          saved.emplace_back(t, std::move(*t));
          *t = Tensor::from_f32({effective[k], size_t(n)}, saved.back().second.shape(), names[k]);
        }
        std::vector<float> y;
        output(y);
        for (auto& [t, original] : saved) *t = std::move(original);
        double e = 0;
        for (size_t i = 0; i < y.size(); ++i)
          e += (double((*reference)[i]) - y[i]) * (double((*reference)[i]) - y[i]);
        return e;
      };
}

std::vector<CompressedTensor> awq_stage_group(const GroupJob& job) {
  const nlohmann::json& p = job.params;
  std::vector<AwqLayer> layers;
  for (const std::string& n : job.names) {
    const Tensor* w = find_weight_f32(job.model, n);
    const BlockTensor* t = find_block_tensor(n);
    const bool qk = t && (t->role == BlockRole::Q || t->role == BlockRole::K);
    layers.push_back({w->as<float>(), w->dim(0), n, !qk});
  }
  AwqOptions o;
  o.bits = p["bits"].get<int>();
  o.symmetric = p["symmetric"].get<bool>();
  o.group_size = std::max(0, p["group_size"].get<int>());
  if (o.group_size == 0) o.group_size = job.stats.cols;
  o.grid = p["grid"].get<int>();
  o.clip = p["clip_search"].get<bool>();
  // The reference scales o_proj only where v_proj's outputs are its inputs (its scale is
  // folded into v_proj's rows): under grouped-query attention o_proj is only clipped,
  // unless the recipe asks for MCW's way (s kept on the layer, the kernels dividing by it).
  const BlockTensor* first = find_block_tensor(job.names.front());
  const LlamaConfig& c = job.model.cfg;
  if (first && first->role == BlockRole::O &&
      width(c, Width::KV, job.layer) != width(c, Width::Q, job.layer) &&
      !p["scale_gqa_o_proj"].get<bool>())
    o.grid = 1;
  AwqResult res = quantize_awq(layers, job.samples, job.sample_rows, job.stats.cols, o, job.cancel,
                               module_loss(job));
  if (p["quantizer"].get<std::string>() == "gptq") {
    GptqOptions q;
    q.bits = o.bits, q.symmetric = o.symmetric, q.group_size = o.group_size;
    q.act_order = q.static_groups = true;
    res.layers = quantize_awq_gptq(layers, job.stats, res.input_scale, q, job.cancel);
  }
  // Each tensor carries s, so that it decodes (and exports) to the weight the model runs;
  // s = 1 (α = 0 won, or o_proj above) needs none.
  const bool ones = std::all_of(res.input_scale.begin(), res.input_scale.end(),
                                [](float v) { return v == 1.0f; });
  if (!ones)
    for (CompressedTensor& t : res.layers) t.input_scale = res.input_scale;
  return std::move(res.layers);
}

int64_t search_tokens(const nlohmann::json& p) { return p["search_tokens"].get<int64_t>(); }
bool dense_inputs(const nlohmann::json& p) { return p["inputs"].get<std::string>() == "dense"; }

LayerCost awq_cost(const nlohmann::json& p, const CostShape& s) {
  using algo::param;
  const double r = s.rows, c = s.cols, n = r * c;
  const double cap = param(p, "search_tokens", 0);
  const double rows = cap > 0 ? std::min(cap, s.calib_tokens) : s.calib_tokens;  // searched tokens
  const double gs = std::min<double>(c, std::max(1, param(p, "group_size", 128)));
  double work = 4 * rows * r * 2 + 4 * n + 4 * c * std::min<double>(c, param(p, "group_size", 128));
  // The search's input samples; with the uncompressed model's inputs (the default), every
  // group of the block is observed before any is compressed: all four groups' samples and
  // statistics at once.
  const double D = s.dim, Q = s.q_dim, H = s.hidden_dim;
  work += param<std::string>(p, "inputs", "dense") == "dense"
              ? 4 * rows * (2 * D + Q + H) + 8 * (2 * D * D + Q * Q)
              : 4 * rows * H;
  const double clip = param(p, "clip_search", true) ? 20 * 2 * n * gs : 0;
  return {algo::affine_stored_bytes(p, r, c), work,
          param(p, "grid", 20) * (2 * rows * n + 10 * n) + clip};
}

}  // namespace

CompressAlgorithm awq_algorithm() {
  using namespace algo;
  return {
      .name = "awq",
      .kind = "quantize",
      .help = "AWQ: activation-aware channel scaling, then round-to-nearest",
      .params = {bits({2, 3, 4, 8}, 4), group(128),
                 flag("symmetric", false, "symmetric (no zero point)"),
                 integer("grid", 20, 2, 100,
                         "points of the scale-exponent search (alpha = k/grid)"),
                 flag("clip_search", true, "search the clipping range after scaling (not q/k)"),
                 flag("scale_gqa_o_proj", false,
                      "scale o_proj under grouped-query attention too (MCW keeps s on the "
                      "layer; the reference does not, as s cannot fold into v_proj)"),
                 integer("search_tokens", 0, 0, 1 << 24,
                         "calibration tokens (whole windows) the scale search runs on; 0: all"),
                 choice("inputs", "dense", {"dense", "compressed"},
                        "statistics from the uncompressed model (AWQ's reference) or from the "
                        "compressed layers before (GPTQ's sequential order)"),
                 choice("quantizer", "rtn", {"rtn", "gptq"},
                        "quantise the scaled weights by round-to-nearest, or by GPTQ (act-order, "
                        "damp 0.01)")},
      // XᵀX for GPTQ after it and for the output error each layer records.
      .needs = needs_gram,
      .compress_group = awq_stage_group,
      .sample_tokens = search_tokens,
      .uncompressed_inputs = dense_inputs,
      .cost = awq_cost};
}

}  // namespace mcw
