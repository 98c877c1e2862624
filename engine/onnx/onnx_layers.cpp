#include "engine/onnx/onnx_layers.h"

#include <algorithm>
#include <map>
#include <set>

namespace mcw {

namespace {

int64_t int_attr(const OnnxNode& n, const char* name, int64_t fallback) {
  const OnnxAttribute* a = n.attribute(name);
  return a && a->type == OnnxAttribute::Int ? a->i : fallback;
}

// The layer view of node n with weight shape s, or rows 0 when the node is no layer.
OnnxLayer layer_of(const OnnxNode& n, const Shape& s) {
  OnnxLayer l;
  l.op = n.op_type, l.weight_shape = s;
  if (n.op_type == "Conv" && s.size() == 4) {
    l.groups = int_attr(n, "group", 1);
    if (l.groups <= 0 || s[0] % l.groups) return {};
    l.rows = s[0] / l.groups, l.cols = s[1] * s[2] * s[3];
  } else if (n.op_type == "ConvTranspose" && s.size() == 4 && int_attr(n, "group", 1) == 1) {
    l.rows = s[1] * s[2] * s[3], l.cols = s[0], l.transposed = true;
  } else if (n.op_type == "MatMul" && s.size() == 2) {
    l.rows = s[1], l.cols = s[0], l.transposed = true;
  } else if (n.op_type == "Gemm" && s.size() == 2 && int_attr(n, "transA", 0) == 0) {
    l.transposed = int_attr(n, "transB", 0) == 0;
    l.rows = l.transposed ? s[1] : s[0], l.cols = l.transposed ? s[0] : s[1];
  } else {
    return {};
  }
  return l;
}

}  // namespace

std::vector<OnnxLayer> onnx_layers(const OnnxModel& model) {
  std::map<std::string, Shape> weights;
  for (const Tensor& t : model.weights()) weights[t.name()] = t.shape();
  std::map<std::string, int> readers;
  for (const OnnxNode& n : model.graph.nodes)
    for (const std::string& in : n.inputs) ++readers[in];
  std::vector<OnnxLayer> layers;
  for (size_t k = 0; k < model.graph.nodes.size(); ++k) {
    const OnnxNode& n = model.graph.nodes[k];
    if (!n.domain.empty() || n.inputs.size() < 2) continue;
    const auto w = weights.find(n.inputs[1]);
    if (w == weights.end() || readers[n.inputs[1]] != 1) continue;
    OnnxLayer l = layer_of(n, w->second);
    if (l.rows <= 0 || l.cols <= 0) continue;
    l.name = n.inputs[1], l.node = k;
    layers.push_back(std::move(l));
  }
  return layers;
}

std::vector<float> layer_matrix(const OnnxLayer& l, const OnnxValue& weight, int64_t group) {
  std::vector<float> m(static_cast<size_t>(l.rows * l.cols));
  const float* w = weight.f.data();
  if (!l.transposed) {
    std::copy_n(w + group * l.rows * l.cols, m.size(), m.begin());
  } else {
    for (int64_t c = 0; c < l.cols; ++c)
      for (int64_t r = 0; r < l.rows; ++r) m[size_t(r * l.cols + c)] = w[c * l.rows + r];
  }
  return m;
}

void set_layer_matrix(const OnnxLayer& l, const float* m, int64_t group, OnnxValue& weight) {
  float* w = weight.f.data();
  if (!l.transposed) {
    std::copy_n(m, l.rows * l.cols, w + group * l.rows * l.cols);
  } else {
    for (int64_t c = 0; c < l.cols; ++c)
      for (int64_t r = 0; r < l.rows; ++r) w[c * l.rows + r] = m[r * l.cols + c];
  }
}

}  // namespace mcw
