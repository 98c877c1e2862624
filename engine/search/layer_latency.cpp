#include "engine/search/layer_latency.h"

#include <tbb/task_arena.h>

#include <chrono>
#include <map>
#include <memory>

#include "engine/core/error.h"
#include "engine/core/sha256.h"
#include "engine/eval/packed_llama.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/packed_weight.h"
#include "engine/runs/process_identity.h"

namespace mcw {

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The median of `repeats` timed batches of `once`, after a warm-up that also sizes the
// batches (about 0.2 ms, long enough for the clock to resolve them).
template <class Fn>
double median_call_ms(Fn&& once, int repeats) {
  int inner = 1;
  for (;;) {
    const double t0 = now_ms();
    for (int i = 0; i < inner; ++i) once();
    if (now_ms() - t0 >= 0.2 || inner >= (1 << 20)) break;
    inner *= 2;
  }
  std::vector<double> t;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const double t0 = now_ms();
    for (int i = 0; i < inner; ++i) once();
    t.push_back((now_ms() - t0) / inner);
  }
  return median(t);
}

}  // namespace

double time_packed_decode_gemv(const PackedWeight& w, int repeats) {
  std::vector<float> x(size_t(w.cols()), 0.5f), y(size_t(w.rows()));
  return median_call_ms([&] { w.matmul(x.data(), y.data(), 1); }, repeats);
}

double time_packed_decode_gemv(const CompressedTensor& w, int repeats) {
  return time_packed_decode_gemv(PackedWeight::from_compressed(w), repeats);
}

double LayerLatencyTable::at(const std::string& layer, const std::string& setting) const {
  for (size_t l = 0; l < layers.size(); ++l)
    for (size_t s = 0; s < settings.size(); ++s)
      if (layers[l] == layer && settings[s] == setting) return ms[l * settings.size() + s];
  throw Error("latency table", "no latency measured for " + setting + " on " + layer);
}

void LayerLatencyTable::derive_rest() {
  double linears = 0;
  for (double ms : dense_ms) linears += ms;
  rest_ms = std::max(0.0, model_ms_per_token - linears);
}

LayerCostFn LayerLatencyTable::cost() const {
  auto copy = std::make_shared<LayerLatencyTable>(*this);
  return [copy](const std::string& layer, const std::string& setting) {
    return copy->at(layer, setting);
  };
}

LayerLatencyTable measure_layer_latency(const LlamaModel& base, const SensitivityTable& table,
                                        const std::vector<std::string>& settings,
                                        std::span<const int32_t> calibration_tokens,
                                        const CompressOptions& co, const LatencyOptions& model_opt,
                                        const LayerKernelTimer& timer, const ProgressFn& progress,
                                        const CancelToken* cancel) {
  const LayerKernelTimer time =
      timer ? timer : [](const CompressedTensor& w) { return time_packed_decode_gemv(w); };
  LayerLatencyTable t;
  t.layers = table.layers;
  t.settings = settings;
  t.ms.assign(t.layers.size() * settings.size(), 0);
  const double steps = double(settings.size() + 2);
  report(progress, "latency", "model", 0, "decode latency of the model");
  // As a run measures it (project_runner): on PackedLlama, uncompressed linears as it packs
  // them, so that the rest of the step (attention, norms, head) is the run's too.
  t.model_ms_per_token = measure_latency(PackedLlama(base, {}), model_opt, {}, cancel).ms_per_token;

  // One layer per shape is timed: layers of one shape at one setting run the same kernel
  // over the same number of bytes. The first of each shape is taken, so that a calibrated
  // setting's pass stops at an early block.
  std::map<std::pair<int64_t, int64_t>, size_t> first_of_shape;
  std::vector<size_t> representative(t.layers.size());
  std::vector<const Tensor*> weight(t.layers.size(), nullptr);
  for (const auto& [name, w] : base.named_tensors())
    if (auto l = table.layer_index(name)) weight[*l] = w;
  for (size_t l = 0; l < t.layers.size(); ++l) {
    if (!weight[l] || weight[l]->ndim() != 2)
      throw Error("latency table", "the model has no 2-D weight " + t.layers[l]);
    representative[l] =
        first_of_shape.try_emplace({weight[l]->dim(0), weight[l]->dim(1)}, l).first->second;
  }
  // Uncompressed: packed as PackedLlama packs a layer it has no compressed tensor for.
  t.dense_ms.assign(t.layers.size(), 0);
  for (size_t l = 0; l < t.layers.size(); ++l) {
    if (cancel) cancel->throw_if_cancelled();
    if (representative[l] == l)
      t.dense_ms[l] = time_packed_decode_gemv(pack_uncompressed(*weight[l], t.layers[l]));
    t.dense_ms[l] = t.dense_ms[representative[l]];
  }
  t.derive_rest();
  report(progress, "latency", "", 2 / steps);
  for (size_t s = 0; s < settings.size(); ++s) {
    std::vector<std::string> assignment(t.layers.size());  // "": kept
    for (const auto& [shape, l] : first_of_shape) assignment[l] = settings[s];
    const Recipe r = mixed_precision_recipe(table, assignment, settings[s]);
    const CompressionResult c = compress_llama(base, r, calibration_tokens, co, {}, cancel);
    for (const CompressedLayer& cl : c.layers) {
      if (cancel) cancel->throw_if_cancelled();
      if (auto l = table.layer_index(cl.tensor.name))
        t.ms[*l * settings.size() + s] = time(cl.tensor);
    }
    for (size_t l = 0; l < t.layers.size(); ++l)
      t.ms[l * settings.size() + s] = t.ms[representative[l] * settings.size() + s];
    report(progress, "latency", settings[s], double(s + 3) / steps);
  }
  return t;
}

std::string latency_metric_key() {
  Sha256 h;
  h.update(cpu_model() + "|" + simd_level_name(cpu_features().level) + "|" +
           std::to_string(tbb::this_task_arena::max_concurrency()));
  return "latency_ms@" + to_hex(h.finish()).substr(0, 12);
}

void store_layer_latency(RunStore& store, const std::string& fingerprint,
                         const LayerLatencyTable& t) {
  const std::string key = latency_metric_key();
  std::vector<SensitivityEntry> e{{kModelLayer, kDenseSetting, key, t.model_ms_per_token}};
  for (size_t l = 0; l < t.layers.size(); ++l) {
    e.push_back({t.layers[l], kDenseSetting, key, t.dense_ms.at(l)});
    for (size_t s = 0; s < t.settings.size(); ++s)
      e.push_back({t.layers[l], t.settings[s], key, t.ms[l * t.settings.size() + s]});
  }
  store.put_sensitivities(fingerprint, e);
}

std::optional<LayerLatencyTable> load_layer_latency(RunStore& store, const std::string& fingerprint,
                                                    const std::vector<std::string>& layers,
                                                    const std::vector<std::string>& settings) {
  const std::string key = latency_metric_key();
  std::map<std::pair<std::string, std::string>, double> v;
  for (const SensitivityEntry& e : store.list_sensitivity(fingerprint))
    if (e.metric == key) v[{e.layer, e.setting}] = e.value;
  auto get = [&](const std::string& l, const std::string& s) -> std::optional<double> {
    const auto it = v.find({l, s});
    return it == v.end() ? std::nullopt : std::optional(it->second);
  };
  LayerLatencyTable t;
  t.layers = layers, t.settings = settings;
  const auto model = get(kModelLayer, kDenseSetting);
  if (!model) return std::nullopt;
  t.model_ms_per_token = *model;
  for (const std::string& l : layers) {
    const auto dense = get(l, kDenseSetting);
    if (!dense) return std::nullopt;
    t.dense_ms.push_back(*dense);
    for (const std::string& s : settings) {
      const auto ms = get(l, s);
      if (!ms) return std::nullopt;
      t.ms.push_back(*ms);
    }
  }
  t.derive_rest();
  return t;
}

}  // namespace mcw
