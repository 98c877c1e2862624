#include "engine/search/layer_latency.h"

#include <chrono>
#include <memory>

#include "engine/core/error.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/packed_weight.h"

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

double time_f32_decode_gemv(const CompressedTensor& w, int repeats) {
  const Tensor dense = w.dequantize();
  std::vector<float> x(size_t(w.cols), 0.5f), y(size_t(w.rows));
  return median_call_ms(
      [&] { matmul_wt(x.data(), dense.as<float>(), y.data(), 1, w.rows, w.cols); }, repeats);
}

double time_packed_decode_gemv(const CompressedTensor& w, int repeats) {
  const PackedWeight packed = PackedWeight::from_compressed(w);
  std::vector<float> x(size_t(w.cols), 0.5f), y(size_t(w.rows));
  return median_call_ms([&] { packed.matmul(x.data(), y.data(), 1); }, repeats);
}

double LayerLatencyTable::at(const std::string& layer, const std::string& setting) const {
  for (size_t l = 0; l < layers.size(); ++l)
    for (size_t s = 0; s < settings.size(); ++s)
      if (layers[l] == layer && settings[s] == setting) return ms[l * settings.size() + s];
  throw Error("latency table", "no latency measured for " + setting + " on " + layer);
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
  t.model_ms_per_token = measure_latency(base, model_opt, {}, cancel).ms_per_token;
  double linears = 0;
  for (const std::string& l : t.layers) {
    if (cancel) cancel->throw_if_cancelled();
    for (const auto& [name, w] : base.named_tensors())
      if (name == l) t.dense_ms.push_back(time_f32_decode_gemv(dense_tensor(*w, l)));
    linears += t.dense_ms.back();
  }
  t.rest_ms = std::max(0.0, t.model_ms_per_token - linears);
  report(progress, "latency", "", 2 / steps);
  for (size_t s = 0; s < settings.size(); ++s) {
    const Recipe r = mixed_precision_recipe(
        table, std::vector<std::string>(t.layers.size(), settings[s]), settings[s]);
    const CompressionResult c = compress_llama(base, r, calibration_tokens, co, {}, cancel);
    for (const CompressedLayer& cl : c.layers) {
      if (cancel) cancel->throw_if_cancelled();
      if (auto l = table.layer_index(cl.tensor.name))
        t.ms[*l * settings.size() + s] = time(cl.tensor);
    }
    report(progress, "latency", settings[s], double(s + 3) / steps);
  }
  return t;
}

}  // namespace mcw
