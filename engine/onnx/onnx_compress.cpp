#include "engine/onnx/onnx_compress.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "engine/compress/affine_quantizer.h"
#include "engine/compress/algorithm.h"
#include "engine/compress/layer_error.h"
#include "engine/core/error.h"
#include "engine/onnx/onnx_packed.h"

namespace mcw {

namespace {

using json = nlohmann::json;

[[noreturn]] void stage_error(const Recipe& r, size_t i, const std::string& what) {
  const RecipeStage& s = r.stages[i];
  throw Error(r.source, (s.line ? "line " + std::to_string(s.line) + ": " : std::string()) +
                            "stage " + std::to_string(i + 1) + " (" + s.algorithm + "): " + what);
}

// The layers stage i compresses: its targets' matches, or every layer for the default.
std::vector<const OnnxLayer*> stage_layers(const Recipe& r, size_t i,
                                           const std::vector<OnnxLayer>& layers) {
  const RecipeStage& s = r.stages[i];
  const bool every = s.targets == std::vector<std::string>{kDefaultStageTarget};
  std::vector<std::string> names;
  for (const OnnxLayer& l : layers) names.push_back(l.name);
  for (const std::string& t : s.targets)
    if (!every && std::none_of(names.begin(), names.end(),
                               [&](const std::string& n) { return pattern_matches(t, n); }))
      stage_error(r, i, "target '" + t + "' matches no compressible layer (Conv, MatMul, Gemm)");
  RecipeStage all = s;
  if (every) all.targets = {"*"};
  const std::vector<std::string> picked = stage_tensors(all, names);
  std::vector<const OnnxLayer*> out;
  for (const OnnxLayer& l : layers)
    if (std::find(picked.begin(), picked.end(), l.name) != picked.end()) out.push_back(&l);
  return out;
}

// A stage's parameters for one layer: the group size fitted to the layer's columns.
json layer_params(const json& params, const OnnxLayer& l, std::string* note) {
  json p = params;
  // A convolution's input channel is kh·kw im2col columns (channel-major).
  if (p.contains("channel_columns") && p["channel_columns"] == 0 && l.op == "Conv")
    p["channel_columns"] = l.weight_shape[2] * l.weight_shape[3];
  if (p.contains("group_size") && p["group_size"].is_number_integer()) {
    const int64_t g = p["group_size"].get<int64_t>(), fit = fit_group_size(g, l.cols);
    if (fit != g) {
      p["group_size"] = fit;
      *note =
          "group " + std::to_string(g) + " does not divide " + std::to_string(l.cols) +
          " columns: " + (fit ? "groups of " + std::to_string(fit) : std::string("per channel"));
    }
  }
  return p;
}

// Bits per value of a weight as the file stores it (ONNX weights are plain types).
uint64_t dtype_bits(const Tensor& t) {
  const DTypeInfo& i = dtype_info(t.dtype());
  return uint64_t(8 * i.block_bytes / i.block);
}

}  // namespace

OnnxWeightSize onnx_weight_size(const OnnxModel& model) {
  OnnxWeightSize s;
  for (const Tensor& t : model.weights())
    if (const DType d = t.dtype();
        d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::F64)
      s.parameters += uint64_t(t.numel()), s.bits += uint64_t(t.numel()) * dtype_bits(t);
  return s;
}

OnnxActivationQuant activation_grid(float min, float max, int bits, bool symmetric) {
  OnnxActivationQuant q;
  q.bits = bits, q.symmetric = symmetric, q.min = min, q.max = max;
  const float lo = std::min(min, 0.0f), hi = std::max(max, 0.0f);
  if (symmetric) {
    // The scale maps max|x| to ±(2^(b−1) − 1); codes saturate at −2^(b−1), as int8
    // QuantizeLinear does.
    q.qmax = float((1 << (bits - 1)) - 1), q.qmin = -q.qmax - 1, q.zero = 0;
    const float a = std::max(std::abs(lo), std::abs(hi));
    q.scale = a > 0 ? a / q.qmax : 1.0f;
  } else {
    q.qmin = 0, q.qmax = float((1 << bits) - 1);
    q.scale = hi > lo ? (hi - lo) / q.qmax : 1.0f;
    q.zero = std::clamp(std::nearbyint(q.qmin - lo / q.scale), q.qmin, q.qmax);
  }
  return q;
}

void fake_quantize(OnnxValue& x, const OnnxActivationQuant& q) {
  for (float& v : x.f) {
    const float code = std::clamp(std::nearbyint(v / q.scale) + q.zero, q.qmin, q.qmax);
    v = q.scale * (code - q.zero);
  }
}

static OnnxRunner with_compression(OnnxRunner runner, const OnnxCompression& c, bool packed) {
  if (packed) runner.use_packed(pack_onnx_layers(c));
  for (const OnnxActivationQuant& q : c.activations)
    runner.transform_input(q.node, [q](OnnxValue& x) { fake_quantize(x, q); });
  return runner;
}

OnnxRunner compressed_runner(const OnnxModel& model, const OnnxCompression& c, bool packed) {
  return with_compression(OnnxRunner(model, c.weights), c, packed);
}

OnnxRunner compressed_runner(const OnnxRunner& original, const OnnxCompression& c, bool packed) {
  // A view of c.weights, owned by c (the aliasing constructor with no owner).
  const std::shared_ptr<const OnnxRunner::Weights> decoded(std::shared_ptr<void>(), &c.weights);
  return with_compression(OnnxRunner(original, decoded), c, packed);
}

OnnxCompression compress_onnx(const OnnxModel& model, const Recipe& recipe,
                              const std::vector<OnnxInputs>& calibration,
                              const ProgressFn& progress, const CancelToken* cancel) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<OnnxLayer> layers = onnx_layers(model);
  // Pre-flight: every stage runs here, and has what it needs.
  std::vector<std::vector<const OnnxLayer*>> targeted;
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const RecipeStage& s = recipe.stages[i];
    const CompressAlgorithm* a = find_algorithm(s.algorithm);
    if (!a || !a->compress_layer) {
      std::string layerwise;
      for (const CompressAlgorithm& c : compress_algorithms())
        if (c.compress_layer) layerwise += (layerwise.empty() ? "" : ", ") + c.name;
      stage_error(recipe, i,
                  "works on a transformer's blocks; an ONNX graph takes the layer-wise "
                  "algorithms (" +
                      layerwise + ")");
    }
    if (a->needs(s.params) != CalibrationNeed::None && calibration.empty())
      stage_error(recipe, i, "needs calibration inputs and none were given");
    targeted.push_back(stage_layers(recipe, i, layers));
  }
  if (!recipe.recovery.empty())
    throw Error(recipe.source,
                "'recovery' fine-tunes a transformer on text; an ONNX graph "
                "has no training here: drop the section");
  if (!recipe.activations.empty() && calibration.empty())
    throw Error(recipe.source, "'activations' needs calibration inputs and none were given");

  OnnxCompression out;
  // Each layer's weight as stored; converted to f32 when a stage first reaches it.
  std::map<std::string, Tensor> stored;
  for (Tensor& t : model.weights()) stored.emplace(t.name(), std::move(t));
  const OnnxWeightSize size = onnx_weight_size(model);
  out.parameters = size.parameters, out.original_bits = size.bits;
  std::map<std::string, OnnxCompressedLayer> done;
  const double per_stage =
      1.0 / double(recipe.stages.size() + (recipe.activations.empty() ? 0 : 1));
  for (size_t i = 0; i < recipe.stages.size(); ++i) {
    const RecipeStage& s = recipe.stages[i];
    const CompressAlgorithm& a = *find_algorithm(s.algorithm);
    const ProgressFn part =
        progress_part(progress, per_stage * double(i), per_stage * double(i + 1));
    const CalibrationNeed need = a.needs(s.params);
    std::map<std::string, OnnxLayerInputs> stats;
    if (need != CalibrationNeed::None) {
      std::vector<OnnxLayer> picked;
      for (const OnnxLayer* l : targeted[i]) picked.push_back(*l);
      const OnnxRunner runner(model, out.weights);
      stats = calibrate_onnx_layers(runner, picked, calibration, need, progress_part(part, 0, 0.5),
                                    cancel);
    }
    for (size_t k = 0; k < targeted[i].size(); ++k) {
      const OnnxLayer& l = *targeted[i][k];
      if (cancel) cancel->throw_if_cancelled();
      report(part, s.algorithm, l.name, 0.5 + 0.5 * double(k) / double(targeted[i].size()));
      auto [it, first] = out.weights.try_emplace(l.name);
      if (first) it->second = OnnxValue::of(stored.at(l.name));
      OnnxValue& w = it->second;
      OnnxCompressedLayer c{l, {}, s.algorithm, {}, 0, !stats.empty(), 0};
      std::string note;
      const json params = layer_params(s.params, l, &note);
      LayerError err;
      for (int64_t g = 0; g < l.groups; ++g) {
        std::vector<float> m = layer_matrix(l, w, g);
        Tensor wt = Tensor::from_f32(m, {l.rows, l.cols}, l.name);
        const LayerStats* st = stats.empty() ? nullptr : &stats.at(l.name).groups[size_t(g)];
        LayerJob job{
            .w = wt, .name = l.name, .stats = st, .params = params, .cancel = cancel, .note = {}};
        CompressedTensor t = a.compress_layer(job);
        if (note.empty()) note = job.note;
        const Tensor q = t.dequantize();
        err += layer_error(m.data(), q.as<float>(), l.rows, l.cols, st);
        set_layer_matrix(l, q.as<float>(), g, w);
        c.storage_bits += t.storage_bits();
        c.parts.push_back(std::move(t));
      }
      c.relative_error = err.relative();
      c.scheme = c.parts.front().describe() + (note.empty() ? "" : "; " + note);
      done[l.name] = std::move(c);  // a later stage wins
    }
  }
  for (const OnnxLayer& l : layers)
    if (const auto it = done.find(l.name); it != done.end()) out.layers.push_back(it->second);
  if (!recipe.activations.empty()) {
    std::vector<OnnxLayer> picked;
    for (const OnnxCompressedLayer& c : out.layers) picked.push_back(c.layer);
    const OnnxRunner runner(model, out.weights);
    const auto ranges = calibrate_onnx_layers(runner, picked, calibration, CalibrationNeed::None,
                                              progress_part(progress, 1 - per_stage, 1), cancel);
    const int bits = recipe.activations["bits"].get<int>();
    const bool symmetric = recipe.activations["symmetric"].get<bool>();
    for (const OnnxLayer& l : picked) {
      const OnnxLayerInputs& r = ranges.at(l.name);
      if (!(r.min <= r.max)) throw Error(model.path, "layer '" + l.name + "' saw no input");
      OnnxActivationQuant q = activation_grid(r.min, r.max, bits, symmetric);
      q.layer = l.name, q.node = l.node;
      out.activations.push_back(q);
    }
  }
  out.storage_bits = out.original_bits;
  for (const OnnxCompressedLayer& c : out.layers)
    out.storage_bits +=
        c.storage_bits - uint64_t(c.layer.parameters()) * dtype_bits(stored.at(c.layer.name));
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report(progress, "done", "", 1.0);
  return out;
}

}  // namespace mcw
