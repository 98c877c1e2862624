#include "engine/search/onnx_sensitivity.h"

#include <cmath>

#include "engine/core/error.h"
#include "engine/onnx/onnx_compress.h"

namespace mcw {

namespace {

// Every row along the last axis is a distribution (a softmax output).
bool holds_distributions(const OnnxValue& y) {
  if (!y.is_float || y.shape.empty() || y.shape.back() < 2 || y.f.empty()) return false;
  const int64_t n = y.shape.back();
  for (int64_t r = 0; r < y.numel() / n; ++r) {
    double sum = 0;
    for (int64_t k = 0; k < n; ++k) {
      if (!(y.f[size_t(r * n + k)] >= 0)) return false;
      sum += y.f[size_t(r * n + k)];
    }
    if (std::abs(sum - 1) >= 1e-3) return false;
  }
  return true;
}

}  // namespace

double output_distance(const OnnxValue& a, const OnnxValue& b, bool* kl) {
  if (a.shape != b.shape || !a.is_float || !b.is_float)
    throw Error("sensitivity", "the compressed graph's output differs in shape or type");
  *kl = holds_distributions(a);
  double num = 0, den = 0;
  if (*kl) {
    const int64_t n = a.shape.back(), rows = a.numel() / n;
    constexpr double eps = 1e-12;  // a probability rounded to 0 in f32
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < n; ++k) {
        const double p = a.f[size_t(r * n + k)], q = b.f[size_t(r * n + k)];
        if (p > 0) num += p * (std::log(p + eps) - std::log(q + eps));
      }
    return num / double(rows);
  }
  for (size_t i = 0; i < a.f.size(); ++i)
    num += (double(b.f[i]) - a.f[i]) * (double(b.f[i]) - a.f[i]), den += double(a.f[i]) * a.f[i];
  return den > 0 ? num / den : 0;
}

OnnxSensitivity onnx_sensitivity(const OnnxModel& model, const std::vector<ScanSetting>& settings,
                                 const std::vector<OnnxInputs>& inputs, const ProgressFn& progress,
                                 const CancelToken* cancel) {
  if (inputs.empty()) throw Error(model.path, "the sensitivity scan needs evaluation inputs");
  if (model.graph.outputs.empty()) throw Error(model.path, "the graph has no output");
  OnnxSensitivity s;
  s.layers = onnx_layers(model);
  s.settings = settings;
  const std::string out = model.graph.outputs[0].name;
  std::vector<OnnxValue> reference;
  {
    const OnnxRunner original(model);
    for (const OnnxInputs& in : inputs) reference.push_back(original.run(in).at(out));
  }
  const size_t cells = s.layers.size() * settings.size();
  for (size_t l = 0; l < s.layers.size(); ++l)
    for (size_t k = 0; k < settings.size(); ++k) {
      if (cancel) cancel->throw_if_cancelled();
      const OnnxLayer& layer = s.layers[l];
      report(progress, settings[k].name, layer.name,
             double(l * settings.size() + k) / double(cells));
      const Recipe r = scan_cell_recipe(settings[k], layer.name, layer.cols);
      const OnnxCompression c = compress_onnx(model, r, {}, {}, cancel);
      const OnnxRunner runner = compressed_runner(model, c);
      double sum = 0;
      for (size_t i = 0; i < inputs.size(); ++i)
        sum += output_distance(reference[i], runner.run(inputs[i]).at(out), &s.kl);
      s.value.push_back(sum / double(inputs.size()));
      s.bits.push_back(c.layers.empty() ? 0 : c.layers.front().storage_bits);
    }
  report(progress, "done", "", 1.0);
  return s;
}

}  // namespace mcw
