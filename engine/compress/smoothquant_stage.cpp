#include "engine/compress/smoothquant_stage.h"

#include <algorithm>
#include <cmath>

#include "engine/compress/algorithm_params.h"
#include "engine/compress/calibrate.h"
#include "engine/compress/layer_error.h"
#include "engine/compress/smoothquant.h"
#include "engine/core/error.h"

namespace mcw {

void fold_smoothing(Tensor& norm, const std::vector<Tensor*>& weights, const std::vector<float>& s,
                    Tensor* norm_bias) {
  const int64_t n = int64_t(s.size());
  if (norm.numel() != n) throw Error(norm.name(), "smoothing scales do not match the norm's width");
  float* g = norm.mutable_as<float>();
  for (int64_t j = 0; j < n; ++j) g[j] /= s[size_t(j)];
  if (norm_bias && !norm_bias->empty()) {  // LayerNorm: its output is x̂·g + b, all divided
    if (norm_bias->numel() != n)
      throw Error(norm_bias->name(), "smoothing scales do not match the bias");
    float* b = norm_bias->mutable_as<float>();
    for (int64_t j = 0; j < n; ++j) b[j] /= s[size_t(j)];
  }
  for (Tensor* w : weights) {
    if (w->ndim() != 2 || w->dim(1) != n)
      throw Error(w->name(), "smoothing scales do not match the weight's input columns");
    smooth_weight(w->mutable_as<float>(), w->dim(0), n, s);
  }
}

void run_smoothquant_stage(LlamaModel& model, const SmoothQuantStageOptions& o,
                           const std::set<std::string>& targeted,
                           const std::vector<std::vector<int32_t>>& windows,
                           const RecordWeightFn& record, const ProgressFn& progress,
                           const CancelToken* cancel, const CalibrationOptions& calibration,
                           const std::function<void(int64_t, const ActivationStore&)>& block_done) {
  std::vector<float> act_max;  // of the group being calibrated
  auto wanted = [&](const LinearGroup& g) {
    return std::any_of(g.names.begin(), g.names.end(),
                       [&](const std::string& n) { return targeted.count(n) > 0; });
  };
  auto smoothed = [&](ActInt8 in) {
    return o.smooth && (in == kActInt8Qkv || in == kActInt8GateUp);
  };

  CalibrationHooks hooks;
  hooks.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
    if (!wanted(g) || !smoothed(g.input)) return;
    act_max.resize(size_t(g.in_features), 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < g.in_features; ++j)
        act_max[size_t(j)] = std::max(act_max[size_t(j)], std::fabs(x[r * g.in_features + j]));
  };
  hooks.compress = [&](const LinearGroup& g) {
    if (!wanted(g)) return;
    const ActInt8 in = g.input;
    LlamaLayer& L = model.layers[size_t(g.layer)];
    if (smoothed(in)) {
      std::vector<Tensor*> ws;
      std::vector<float> w_max(size_t(g.in_features), 0.0f);
      for (const std::string& n : g.names) {
        Tensor* w = find_weight_f32(model, n);
        const auto m = column_max_abs(w->as<float>(), w->dim(0), w->dim(1));
        for (size_t j = 0; j < m.size(); ++j) w_max[j] = std::max(w_max[j], m[j]);
        ws.push_back(w);
      }
      const auto s = smoothquant_scales(act_max, w_max, o.alpha);
      const bool qkv = in == kActInt8Qkv;
      fold_smoothing(qkv ? L.attn_norm : L.ffn_norm, ws, s, qkv ? &L.attn_norm_b : &L.ffn_norm_b);
      act_max.clear();
    }
    if (!o.quantize) return;
    for (const std::string& n : g.names) {
      if (!targeted.count(n)) continue;
      Tensor* w = find_weight_f32(model, n);
      CompressedTensor q = quantize_weight_w8(w->as<float>(), w->dim(0), w->dim(1), cancel, n);
      Tensor deq = q.dequantize();
      const double err =
          layer_error(w->as<float>(), deq.as<float>(), w->dim(0), w->dim(1), nullptr).relative();
      if (record) record(n, std::move(q), err, false);
      deq.set_name(n);
      *w = std::move(deq);
    }
    L.act_int8 |= in;
  };
  hooks.block_done = block_done;
  sequential_calibrate(model, windows, hooks, progress, cancel, calibration);
}

// The recipe's "smoothquant" (algorithm.h).
namespace {

void smoothquant_stage(StageJob& job) {
  SmoothQuantStageOptions o;
  o.alpha = job.params["alpha"].get<float>();
  run_smoothquant_stage(job.model, o, job.targeted, job.windows, job.record, job.progress, job.cancel,
                        job.calibration, [&](int64_t l, const ActivationStore& hidden) {
                          job.block_done(l, true, &hidden);
                        });
}

// int8 codes with a scale and zero per output channel.
LayerCost smoothquant_cost(const nlohmann::json&, const CostShape& s) {
  const double n = s.rows * s.cols;
  return {n + 8 * s.rows, algo::per_weight_work_bytes(s.rows, s.cols), 10 * n};
}

}  // namespace

CompressAlgorithm smoothquant_algorithm() {
  using namespace algo;
  return {.name = "smoothquant",
          .kind = "quantize",
          .help = "SmoothQuant W8A8: migrate activation outliers into weights",
          .params = {number("alpha", 0.5, 0.0, 1.0, "migration strength")},
          .needs = needs_own_pass,
          .run_stage = smoothquant_stage,
          .cost = smoothquant_cost};
}

}  // namespace mcw
