#include "engine/search/onnx_sensitivity.h"

#include <cmath>
#include <map>

#include "engine/core/error.h"
#include "engine/core/sha256.h"
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

namespace {

// "onnx<n>#<digest of the inputs' names, shapes and values>" (12 hex digits of SHA-256, as
// the transformer scan's measurements): cells measured on other inputs are never read back
// as these.
std::string measurement_of(const std::vector<OnnxInputs>& inputs) {
  Sha256 h;
  for (const OnnxInputs& in : inputs)
    for (const auto& [name, v] : in) {
      h.update(name);
      h.update(v.shape.data(), v.shape.size() * sizeof(int64_t));
      h.update(v.f.data(), v.f.size() * sizeof(float));
    }
  return "onnx" + std::to_string(inputs.size()) + "#" + to_hex(h.finish()).substr(0, 12);
}

}  // namespace

OnnxSensitivity onnx_sensitivity(const OnnxModel& model, const std::vector<ScanSetting>& settings,
                                 const std::vector<OnnxInputs>& inputs, const ProgressFn& progress,
                                 const CancelToken* cancel, const OnnxSensitivityOptions& options) {
  if (inputs.empty()) throw Error(model.path, "the sensitivity scan needs evaluation inputs");
  if (model.graph.outputs.empty()) throw Error(model.path, "the graph has no output");
  OnnxSensitivity s;
  s.layers = onnx_layers(model);
  s.settings = settings;
  const std::string out = model.graph.outputs[0].name;
  std::vector<OnnxValue> reference;
  const OnnxRunner original(model);  // its f32 weights shared by every cell's runner
  for (const OnnxInputs& in : inputs) reference.push_back(original.run(in).at(out));
  output_distance(reference[0], reference[0], &s.kl);  // the measure, from the output's kind
  const std::string at = "@" + measurement_of(inputs);
  const std::string value_key = (s.kl ? "kl" : "map") + at, bits_key = "bits" + at;
  std::map<std::pair<std::string, std::string>, std::pair<double, double>> stored;
  if (options.store)
    for (const SensitivityEntry& e : options.store->list_sensitivity(options.fingerprint)) {
      if (e.metric == value_key) stored[{e.layer, e.setting}].first = e.value;
      if (e.metric == bits_key) stored[{e.layer, e.setting}].second = e.value + 1;  // 0: none
    }
  const size_t cells = s.layers.size() * settings.size();
  for (size_t l = 0; l < s.layers.size(); ++l)
    for (size_t k = 0; k < settings.size(); ++k) {
      if (cancel) cancel->throw_if_cancelled();
      const OnnxLayer& layer = s.layers[l];
      report(progress, settings[k].name, layer.name,
             double(l * settings.size() + k) / double(cells));
      OnnxSensitivityCell cell{layer.name, settings[k].name, 0, 0, s.kl, false};
      if (const auto it = stored.find({layer.name, settings[k].name});
          it != stored.end() && it->second.second > 0) {
        cell.value = it->second.first, cell.bits = uint64_t(it->second.second - 1);
        cell.cached = true;
        ++s.cached;
      } else {
        const Recipe r = scan_cell_recipe(settings[k], layer.name, layer.cols);
        const OnnxCompression c = compress_onnx(model, r, {}, {}, cancel);
        const OnnxRunner runner = compressed_runner(original, c);
        double sum = 0;
        bool kl = false;
        for (size_t i = 0; i < inputs.size(); ++i)
          sum += output_distance(reference[i], runner.run(inputs[i]).at(out), &kl);
        cell.value = sum / double(inputs.size());
        cell.bits = c.layers.empty() ? 0 : c.layers.front().storage_bits;
        if (options.store)
          options.store->put_sensitivities(
              options.fingerprint, {{cell.layer, cell.setting, value_key, cell.value},
                                    {cell.layer, cell.setting, bits_key, double(cell.bits)}});
      }
      s.value.push_back(cell.value);
      s.bits.push_back(cell.bits);
      if (options.on_cell) options.on_cell(cell);
    }
  report(progress, "done", "", 1.0);
  return s;
}

}  // namespace mcw
