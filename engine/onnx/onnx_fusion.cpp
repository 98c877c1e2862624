#include "engine/onnx/onnx_fusion.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>

namespace mcw {

namespace {

// A scalar float weight equal to v.
bool scalar_is(const std::map<std::string, OnnxValue>& weights, const std::string& name, float v) {
  const auto it = weights.find(name);
  return it != weights.end() && it->second.is_float && it->second.numel() == 1 &&
         it->second.f[0] == v;
}

}  // namespace

std::vector<HardSwishChain> find_hardswish_chains(const OnnxModel& model,
                                                  const std::map<std::string, OnnxValue>& weights) {
  const std::vector<OnnxNode>& nodes = model.graph.nodes;
  std::map<std::string, std::vector<size_t>> readers;
  for (size_t k = 0; k < nodes.size(); ++k)
    for (const std::string& in : nodes[k].inputs) readers[in].push_back(k);
  for (const OnnxValueInfo& v : model.graph.outputs) readers[v.name].push_back(nodes.size());
  // The one node reading `value`, of type `op`, or nodes.size().
  auto only_reader = [&](const std::string& value, const char* op) {
    const auto it = readers.find(value);
    if (it == readers.end() || it->second.size() != 1 || it->second[0] >= nodes.size())
      return nodes.size();
    const OnnxNode& n = nodes[it->second[0]];
    return n.op_type == op && n.domain.empty() && n.outputs.size() == 1 ? it->second[0]
                                                                        : nodes.size();
  };
  std::vector<HardSwishChain> out;
  for (size_t k = 0; k < nodes.size(); ++k) {
    const OnnxNode& add = nodes[k];
    if (add.op_type != "Add" || !add.domain.empty() || add.inputs.size() != 2 ||
        add.outputs.size() != 1)
      continue;
    HardSwishChain c;
    c.add = k;
    const bool three_second = scalar_is(weights, add.inputs[1], 3.0f);
    if (!three_second && !scalar_is(weights, add.inputs[0], 3.0f)) continue;
    c.x = add.inputs[three_second ? 0 : 1];
    if (weights.count(c.x)) continue;
    if ((c.clip = only_reader(add.outputs[0], "Clip")) == nodes.size()) continue;
    const OnnxNode& clip = nodes[c.clip];
    const bool bounds = model.opset() < 11
                            ? clip.inputs.size() == 1 && clip.attribute("min") &&
                                  clip.attribute("max") && clip.attribute("min")->f == 0.0f &&
                                  clip.attribute("max")->f == 6.0f
                            : clip.inputs.size() == 3 && scalar_is(weights, clip.inputs[1], 0.0f) &&
                                  scalar_is(weights, clip.inputs[2], 6.0f);
    if (!bounds || (c.mul = only_reader(clip.outputs[0], "Mul")) == nodes.size()) continue;
    const OnnxNode& mul = nodes[c.mul];
    // Mul(x, clip), in that order: the fused pass multiplies in the same order.
    if (mul.inputs.size() != 2 || mul.inputs[0] != c.x || mul.inputs[1] != clip.outputs[0])
      continue;
    if ((c.div = only_reader(mul.outputs[0], "Div")) == nodes.size()) continue;
    const OnnxNode& div = nodes[c.div];
    if (div.inputs.size() != 2 || div.inputs[0] != mul.outputs[0] ||
        !scalar_is(weights, div.inputs[1], 6.0f))
      continue;
    c.y = div.outputs[0];
    out.push_back(c);
  }
  return out;
}

OnnxValue run_hardswish_chain(const OnnxValue& x, OnnxValue* in_place) {
  OnnxValue y =
      in_place ? std::move(*in_place) : OnnxValue::floats(x.shape, std::vector<float>(x.f.size()));
  const float* src = in_place ? y.f.data() : x.f.data();
  tbb::parallel_for(tbb::blocked_range<size_t>(0, y.f.size(), 4096), [&](const auto& r) {
    for (size_t k = r.begin(); k < r.end(); ++k) {
      const float v = src[k];
      // As the unfused nodes compute it: Add, Clip (exact in float), Mul(x, ·), Div.
      y.f[k] = v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
    }
  });
  return y;
}

}  // namespace mcw
