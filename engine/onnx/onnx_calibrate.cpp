#include "engine/onnx/onnx_calibrate.h"

#include <algorithm>

#include "engine/compress/layer_stats_accumulate.h"
#include "engine/core/error.h"
#include "engine/onnx/onnx_conv.h"

namespace mcw {

std::vector<float> layer_input_rows(const OnnxModel& model, const OnnxLayer& l, const OnnxValue& x,
                                    int64_t group, int64_t* n) {
  const OnnxNode& node = model.graph.nodes[l.node];
  const std::string where = model.path + ": node '" + node.name + "' (" + node.op_type + ")";
  if (!x.is_float) throw Error(where, "the layer's input is not floating-point");
  std::vector<float> rows;
  if (l.op == "Conv") {
    if (x.shape.size() != 4) throw Error(where, "the input is not [N, C, H, W]");
    const int64_t images = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
    const int64_t cig = l.weight_shape[1];
    if (c != cig * l.groups) throw Error(where, "the input's channels do not match the groups");
    const OnnxOpContext ctx{node, model.opset(), where};
    const Window g = conv_window(ctx, h, w, l.weight_shape[2], l.weight_shape[3]);
    const int64_t pixels = g.oh * g.ow;
    std::vector<float> patches(size_t(l.cols * pixels));
    rows.resize(size_t(images * pixels * l.cols));
    for (int64_t img = 0; img < images; ++img) {
      conv_patches(x.f.data() + (img * c + group * cig) * h * w, cig, h, w, g, patches.data());
      float* dst = rows.data() + img * pixels * l.cols;
      for (int64_t p = 0; p < l.cols; ++p)
        for (int64_t q = 0; q < pixels; ++q) dst[q * l.cols + p] = patches[size_t(p * pixels + q)];
    }
    *n = images * pixels;
    return rows;
  }
  if (l.op == "ConvTranspose") {  // every input pixel's channels are one row
    if (x.shape.size() != 4 || x.shape[1] != l.cols)
      throw Error(where, "the input is not [N, C, H, W] with the weight's C");
    const int64_t images = x.shape[0], pixels = x.shape[2] * x.shape[3];
    rows.resize(size_t(images * pixels * l.cols));
    for (int64_t img = 0; img < images; ++img)
      for (int64_t ch = 0; ch < l.cols; ++ch)
        for (int64_t q = 0; q < pixels; ++q)
          rows[size_t((img * pixels + q) * l.cols + ch)] =
              x.f[size_t((img * l.cols + ch) * pixels + q)];
    *n = images * pixels;
    return rows;
  }
  // MatMul, Gemm: the activation's last dimension is the layer's input.
  if (x.shape.empty() || x.shape.back() != l.cols)
    throw Error(where, "the input's last dimension is not the weight's " + std::to_string(l.cols));
  *n = x.numel() / l.cols;
  return x.f;
}

std::map<std::string, OnnxLayerInputs> calibrate_onnx_layers(const OnnxRunner& runner,
                                                             const std::vector<OnnxLayer>& layers,
                                                             const std::vector<OnnxInputs>& inputs,
                                                             CalibrationNeed need,
                                                             const ProgressFn& progress,
                                                             const CancelToken* cancel) {
  std::map<std::string, OnnxLayerInputs> out;
  std::map<size_t, const OnnxLayer*> by_node;
  for (const OnnxLayer& l : layers) {
    by_node[l.node] = &l;
    OnnxLayerInputs& s = out[l.name];
    if (need != CalibrationNeed::None)
      for (int64_t g = 0; g < l.groups; ++g)
        s.groups.push_back(make_layer_stats(l.cols, need == CalibrationNeed::Gram));
  }
  OnnxRunOptions opt;
  opt.observe = [&](size_t node, std::span<const OnnxValue* const> in) {
    const auto it = by_node.find(node);
    if (it == by_node.end() || !in[0]) return;
    const OnnxLayer& l = *it->second;
    const OnnxValue& x = *in[0];
    OnnxLayerInputs& s = out[l.name];
    if (x.is_float && !x.f.empty()) {
      const auto [lo, hi] = std::minmax_element(x.f.begin(), x.f.end());
      s.min = std::min(s.min, *lo), s.max = std::max(s.max, *hi);
    }
    for (int64_t g = 0; g < int64_t(s.groups.size()); ++g) {
      int64_t n = 0;
      const std::vector<float> rows = layer_input_rows(runner.model(), l, x, g, &n);
      accumulate(s.groups[size_t(g)], rows.data(), n);
    }
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (cancel) cancel->throw_if_cancelled();
    report(progress, "calibrate", "", double(i) / double(inputs.size()),
           "input " + std::to_string(i + 1) + " of " + std::to_string(inputs.size()));
    runner.run(inputs[i], opt);
  }
  return out;
}

}  // namespace mcw
