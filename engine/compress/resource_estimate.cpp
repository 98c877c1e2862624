#include "engine/compress/resource_estimate.h"

#include "engine/train/recovery.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "engine/compress/algorithm.h"
#include "engine/core/error.h"
#include "engine/kernels/gemm.h"
#include "engine/model/llama_model.h"
#include "engine/model/llama_tensors.h"

namespace mcw {

namespace {

using json = nlohmann::json;

// Sizes are summed in double (exact below 2^53) so that hostile shapes cannot overflow.
uint64_t to_bytes(double b) {
  if (!(b > 0)) return 0;
  if (b >= 1.8e19) return std::numeric_limits<uint64_t>::max();
  return uint64_t(std::ceil(b));
}

// Stages that accumulate XᵀX per group of linears sharing an input.
bool uses_hessian(const RecipeStage& s) {
  return calibration_need(s.algorithm, s.params) == CalibrationNeed::Gram;
}
// Stages that run the calibration text through the model (sequential_calibrate).
bool calibrates(const RecipeStage& s) {
  return calibration_need(s.algorithm, s.params) != CalibrationNeed::None;
}

// The algorithm's own cost of one linear [r, c], plus what every layer's compression
// holds and does besides: the decoded weight and relative_error's three f32 products, f32
// H when the stage gathers it; relative_error's FLOPs ((ΔW·H) and (W·H), 2·r·c² each, or
// a few per weight without H).
LayerCost layer_cost(const RecipeStage& s, const CostShape& shape) {
  const CompressAlgorithm* a = find_algorithm(s.algorithm);
  if (!a) throw Error("recipe", "unknown algorithm '" + s.algorithm + "'");
  LayerCost cost = a->cost(s.params, shape);
  const double n = shape.rows * shape.cols, c2 = shape.cols * shape.cols;
  const bool stats = uses_hessian(s);
  cost.work_bytes += 4 * n * 4 + (stats ? 4 * c2 : 0);
  cost.flops += stats ? 4 * shape.rows * c2 : 3 * n;
  return cost;
}

}  // namespace

uint64_t ModelShape::parameters() const {
  uint64_t p = other_params;
  for (const LinearShape& l : linears) p += uint64_t(l.rows) * uint64_t(l.cols);
  return p;
}

ModelShape model_shape(const LlamaConfig& cfg) {
  ModelShape m;
  m.dim = cfg.dim, m.q_dim = cfg.q_dim(), m.hidden_dim = cfg.hidden_dim;
  m.n_layers = cfg.n_layers, m.vocab = cfg.vocab_size;
  m.kv_dim = cfg.kv_dim(), m.n_heads = cfg.n_heads, m.context = cfg.max_seq_len;
  LlamaModel names_only;  // no weights: only the names and their order
  names_only.cfg = cfg;
  names_only.layers.resize(size_t(std::max<int64_t>(cfg.n_layers, 0)));
  for (const auto& [name, t] : names_only.named_tensors()) m.tensor_names.push_back(name);
  uint64_t vectors = 0;  // norms and biases of every block
  for (int64_t l = 0; l < cfg.n_layers; ++l)
    for (const BlockTensor& t : llama_block_tensors())
      if (t.present(cfg) && !t.linear())
        vectors += uint64_t(width(cfg, t.rows, l));
      else if (t.present(cfg))
        m.linears.push_back(
            {block_tensor_name(l, t), width(cfg, t.rows, l), width(cfg, t.cols, l)});
  const int64_t D = cfg.dim;
  m.other_params = uint64_t(cfg.vocab_size) * uint64_t(D) * (cfg.tie_embeddings ? 1 : 2) +
                   uint64_t(D) + vectors +
                   (cfg.learned_positions ? uint64_t(cfg.max_seq_len) * uint64_t(D) : 0) +
                   (cfg.layer_norm() ? uint64_t(D) : 0);  // GPT-2's positions, ln_f's bias
  return m;
}

ResourceEstimate estimate_resources(const ModelShape& model, const Recipe& recipe,
                                    const EstimateSettings& settings) {
  ResourceEstimate e;
  const double P = double(model.parameters());
  e.base_bytes = to_bytes(4 * P);
  e.working_bytes = to_bytes(4 * P);

  const double windows = double(recipe.calibration.value("windows", settings.calib_windows));
  const double window = double(recipe.calibration.value("window", settings.calib_window));
  const double N = std::max(0.0, windows) * std::max(0.0, window);  // calibration tokens
  std::vector<std::string> names;
  for (const LinearShape& l : model.linears) names.push_back(l.name);

  // hidden states and normed inputs [N, dim], one block's activations [N, max(q, hidden)].
  const double calib_buffers =
      4 * N * (2 * double(model.dim) + double(std::max(model.q_dim, model.hidden_dim))) + 4 * N;
  double linear_params = 0;
  for (const LinearShape& l : model.linears) linear_params += double(l.rows) * double(l.cols);
  // The calibration forward: every linear, plus causal attention (QKᵀ and AV).
  const double calib_forward =
      2 * N * linear_params + 2 * N * window * double(model.q_dim) * double(model.n_layers);

  std::map<std::string, const LinearShape*> by_name;
  for (const LinearShape& l : model.linears) by_name[l.name] = &l;
  // Streamed: sequential_calibrate's buffers. The hidden states of every calibration token
  // (in the activation dtype); one window's block input and normed copy; the o_proj and
  // down_proj inputs of every token while they fit its reuse budget (1 GiB), else of one
  // window; one window's q/k/v and attention scores.
  const double D = double(model.dim), Q = double(model.q_dim), H = double(model.hidden_dim);
  const auto kept_rows = [&](double width) { return 4 * N * width <= double(1 << 30) ? N : window; };
  const double hidden = std::min(double(settings.activation_bytes) * N * D, double(settings.activation_budget));
  const double streamed_calib = hidden + 8 * window * D +
                                4 * kept_rows(Q) * Q + 4 * kept_rows(H) * H + 4 * window * (3 * Q + window);
  double streamed_compressed = 0;

  std::map<std::string, double> compressed;  // the last stage to touch a linear wins
  double transient = 0;
  for (size_t si = 0; si < recipe.stages.size(); ++si) {
    const RecipeStage& s = recipe.stages[si];
    const std::vector<std::string> hit = stage_tensors(s, names);
    if (hit.empty()) continue;
    double worst_layer = 0, flops = 0, stage_bytes = 0;
    std::map<std::string, double> block_bytes;  // "model.layers.N" -> its layers' bytes
    for (const std::string& n : hit) {
      const LinearShape& l = *by_name[n];
      const double c = double(l.cols);
      const LayerCost cost = layer_cost(s, {double(l.rows), c, N, D, Q, H});
      compressed[n] = cost.stored_bytes;
      stage_bytes += compressed[n];
      block_bytes[n.substr(0, n.find('.', std::string("model.layers.").size()))] += compressed[n];
      double layer = cost.work_bytes;
      if (uses_hessian(s)) layer += 8 * c * c + 12 * c + 4 * c * c;  // LayerStats + its chunk
      worst_layer = std::max(worst_layer, layer);
      flops += cost.flops;
    }
    if (uses_hessian(s)) {
      // XᵀX over N rows, once per group of linears sharing an input (q/k/v, gate/up).
      std::map<std::pair<int64_t, uint8_t>, double> groups;  // (layer, input) -> cols
      for (const std::string& n : hit) {
        int64_t layer = -1;
        const BlockTensor* t = find_block_tensor(n, &layer);
        groups[{layer, t ? t->input : uint8_t(0)}] = double(by_name[n]->cols);
      }
      for (const auto& [key, c] : groups) flops += 2 * N * c * c;
    }
    if (calibrates(s)) flops += calib_forward, worst_layer += settings.streamed ? streamed_calib : calib_buffers;
    transient = std::max(transient, worst_layer);
    // The last stage writes each block's layers when the block is done; earlier stages'
    // stay in memory until then.
    double largest_block = 0;
    for (const auto& [b, bytes] : block_bytes) largest_block = std::max(largest_block, bytes);
    streamed_compressed += si + 1 == recipe.stages.size() ? largest_block : stage_bytes;
    e.compress_flops += flops;
  }
  double comp = 0;
  for (const auto& [n, b] : compressed) comp += b;
  e.compressed_bytes = to_bytes(2 * comp);
  e.transient_bytes = to_bytes(transient);
  if (settings.streamed) {
    const double blocks = double(std::max<int64_t>(model.n_layers, 1));
    // The embeddings (and an untied head) stay mapped; the norms and biases are f32 copies.
    const bool head = std::find(model.tensor_names.begin(), model.tensor_names.end(), "lm_head.weight") !=
                      model.tensor_names.end();
    const double mapped = double(model.vocab) * D * (head ? 2 : 1);
    e.base_bytes = to_bytes(4 * std::max(0.0, double(model.other_params) - mapped));
    // Structured stages slice every layer at once: the whole model in f32 (materialize_f32).
    bool whole = false;
    for (const RecipeStage& s : recipe.stages) {
      const CompressAlgorithm* a = find_algorithm(s.algorithm);
      whole |= a && a->reshape;
    }
    e.working_bytes = to_bytes(4 * (whole ? P : linear_params / blocks));
    // A project run keeps them all (for its latency measurement), not one block's.
    e.compressed_bytes = to_bytes(settings.run_eval_window > 0 ? comp : streamed_compressed);
  }
  e.peak_bytes = e.base_bytes + e.working_bytes + e.compressed_bytes + e.transient_bytes;
  if (settings.streamed && settings.run_eval_window > 0) {
    // Building the packed model compares each layer's decode with the model's weight: the
    // weight in f32, the decode and its 16-bit rounding, one layer at a time.
    double largest = 0;
    for (const LinearShape& l : model.linears) largest = std::max(largest, double(l.rows) * double(l.cols));
    e.evaluation_bytes = to_bytes(2 * comp + 2 * 4 * double(settings.run_eval_window) * double(model.vocab) +
                                  10 * largest);
    e.peak_bytes = std::max(e.peak_bytes, e.base_bytes + e.evaluation_bytes);
  }
  if (!recipe.recovery.empty()) {
    const RecoveryCost rc = recovery_cost(model, recovery_options(recipe.recovery));
    e.recovery_bytes = rc.bytes, e.recovery_flops = rc.flops;
    // The compressed layers stay in memory beside the recovery (they are its frozen
    // weights); in a project run the recovered layers join them while the recovered model
    // is written.
    const uint64_t layers = settings.streamed && settings.run_eval_window > 0
                                ? 2 * e.compressed_bytes
                                : e.compressed_bytes;
    e.peak_bytes = std::max(e.peak_bytes, e.base_bytes + layers + e.recovery_bytes);
  }
  if (settings.streamed) {
    e.slack_bytes = to_bytes(0.1 * double(e.peak_bytes) + double(64 << 20));
    e.peak_bytes += e.slack_bytes;
  }

  // Evaluation runs the compressed model and the baseline (for KL) on every token.
  e.eval_flops = 2 * (2 * P * double(std::max<int64_t>(settings.eval_tokens, 0)));
  e.gflops = settings.gflops > 0 ? settings.gflops : measured_gemm_gflops();
  e.seconds = (e.compress_flops + e.eval_flops + e.recovery_flops) / (e.gflops * 1e9);
  return e;
}

double measure_gemm_gflops(int64_t n, int repeats) {
  std::vector<float> a(size_t(n * n), 0.5f), b(size_t(n * n), 0.25f), c(size_t(n * n));
  double best = 1e30;
  for (int rep = 0; rep < repeats; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    matmul(a.data(), b.data(), c.data(), n, n, n);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double g = 2.0 * double(n) * double(n) * double(n) / std::max(best, 1e-9) / 1e9;
  return std::clamp(g, 0.5, 1e5);  // a timer glitch must not give absurd numbers
}

double measured_gemm_gflops() {
  static const double rate = measure_gemm_gflops(192, 5);
  return rate;
}

}  // namespace mcw
