#include "engine/onnx/onnx_runner.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "engine/core/error.h"
#include "engine/onnx/onnx_ops.h"

namespace mcw {

static std::string where_of(const OnnxModel& m, const OnnxNode& n, size_t k) {
  return m.path + ": node '" + (n.name.empty() ? "#" + std::to_string(k) : n.name) + "' (" +
         n.op_type + ")";
}

// A Constant node whose value MCW holds as a weight.
static const OnnxAttribute* constant_value(const OnnxNode& n) {
  if (n.op_type != "Constant" || !n.domain.empty() || n.outputs.size() != 1) return nullptr;
  const OnnxAttribute* v = n.attribute("value");
  return v && v->type == OnnxAttribute::Tensor ? v : nullptr;
}

void OnnxRunner::check(const OnnxModel& model) {
  const OnnxGraph& g = model.graph;
  std::set<std::string> known;
  for (const Tensor& t : g.initializers) known.insert(t.name());
  for (const OnnxValueInfo& v : g.inputs) known.insert(v.name);
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    const OnnxNode& n = g.nodes[k];
    if (constant_value(n)) {
      known.insert(n.outputs[0]);
      continue;
    }
    if (!n.domain.empty() && n.domain != "ai.onnx")
      throw Error(where_of(model, n, k), "operator domain '" + n.domain + "' is not supported");
    if (!find_onnx_op(n.op_type))
      throw Error(where_of(model, n, k), "operator " + n.op_type + " is not supported");
    for (const std::string& in : n.inputs)
      if (!in.empty() && !known.count(in))
        throw Error(where_of(model, n, k), "reads '" + in + "', which no node before it produces");
    for (const std::string& out : n.outputs) known.insert(out);
  }
  for (const OnnxValueInfo& v : g.outputs)
    if (!known.count(v.name))
      throw Error(model.path, "graph output '" + v.name + "' is never produced");
}

OnnxRunner::OnnxRunner(const OnnxModel& model, std::map<std::string, OnnxValue> replaced)
    : model_(model) {
  check(model);
  const OnnxGraph& g = model.graph;
  auto weights = std::make_shared<Weights>();
  for (const Tensor& t : g.initializers) (*weights)[t.name()] = OnnxValue::of(t);
  // Constant nodes' values are weights like initializers: converted once, not per run.
  for (size_t k = 0; k < g.nodes.size(); ++k)
    if (const OnnxAttribute* v = constant_value(g.nodes[k])) {
      (*weights)[g.nodes[k].outputs[0]] = OnnxValue::of(v->t);
      constants_.insert(k);
    }
  weights_ = std::move(weights);
  // Fused chains read x only; their inner values are never made.
  for (const HardSwishChain& c : find_hardswish_chains(model, *weights_)) {
    chains_[c.add] = c;
    fused_.insert({c.clip, c.mul, c.div});
  }
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (constants_.count(k) || fused_.count(k)) continue;
    const auto chain = chains_.find(k);
    for (const std::string& in :
         chain != chains_.end() ? std::vector<std::string>{chain->second.x} : g.nodes[k].inputs)
      if (!in.empty()) last_reader_[in] = k;
  }
  for (const OnnxValueInfo& v : g.outputs) last_reader_[v.name] = g.nodes.size();  // kept
  check_replaced(replaced);
  if (!replaced.empty()) replaced_ = std::make_shared<const Weights>(std::move(replaced));
}

OnnxRunner::OnnxRunner(const OnnxRunner& base, std::shared_ptr<const Weights> replaced)
    : model_(base.model_),
      weights_(base.weights_),
      constants_(base.constants_),
      last_reader_(base.last_reader_),
      chains_(base.chains_),
      fused_(base.fused_) {
  // The chains' constants are scalars no replacement (a layer's weight) can be.
  if (replaced) check_replaced(*replaced);
  replaced_ = std::move(replaced);
}

void OnnxRunner::check_replaced(const Weights& replaced) const {
  for (const auto& [name, v] : replaced) {
    const auto it = weights_->find(name);
    if (it == weights_->end())
      throw Error(model_.path, "'" + name + "' is not a weight of the graph");
    if (it->second.shape != v.shape || it->second.is_float != v.is_float)
      throw Error(model_.path,
                  "the replacement of weight '" + name + "' has another shape or type");
  }
}

const OnnxValue* OnnxRunner::weight(const std::string& name) const {
  if (replaced_)
    if (const auto it = replaced_->find(name); it != replaced_->end()) return &it->second;
  const auto it = weights_->find(name);
  return it == weights_->end() ? nullptr : &it->second;
}

void OnnxRunner::transform_input(size_t node, std::function<void(OnnxValue&)> fn) {
  if (node >= model_.graph.nodes.size() || model_.graph.nodes[node].inputs.empty())
    throw Error(model_.path, "node #" + std::to_string(node) + " has no input to transform");
  transforms_[node] = std::move(fn);
}

void OnnxRunner::use_packed(OnnxPackedLayers layers) {
  for (const auto& [node, w] : layers) {
    const std::vector<OnnxNode>& nodes = model_.graph.nodes;
    const std::string op = node < nodes.size() ? nodes[node].op_type : "";
    if (op != "Conv" && op != "MatMul" && op != "Gemm")
      throw Error(model_.path, "node #" + std::to_string(node) + " takes no packed weight");
  }
  packed_ = std::move(layers);
}

std::map<std::string, OnnxValue> OnnxRunner::run(const std::map<std::string, OnnxValue>& inputs,
                                                 const OnnxRunOptions& options) const {
  const OnnxGraph& g = model_.graph;
  std::map<std::string, OnnxValue> live;
  for (const OnnxValueInfo& v : g.inputs) {
    if (weights_->count(v.name)) continue;  // older exporters list initializers as inputs
    const auto it = inputs.find(v.name);
    if (it == inputs.end()) throw Error(model_.path, "graph input '" + v.name + "' was not given");
    live[v.name] = it->second;
  }
  auto value = [&](const std::string& name) -> const OnnxValue* {
    if (const auto it = live.find(name); it != live.end()) return &it->second;
    return weight(name);
  };
  for (size_t k = 0; k < g.nodes.size(); ++k) {
    if (constants_.count(k) || fused_.count(k)) continue;
    const OnnxNode& n = g.nodes[k];
    if (const auto chain = chains_.find(k); chain != chains_.end()) {
      const HardSwishChain& c = chain->second;
      const OnnxValue* x = value(c.x);
      if (!x || !x->is_float)
        throw Error(where_of(model_, n, k), "HardSwish of a missing or integer value");
      const auto t0 = std::chrono::steady_clock::now();
      OnnxValue donated;
      const bool last = last_reader_.at(c.x) == k && live.count(c.x);
      if (last) donated = std::move(live.at(c.x)), live.erase(c.x);
      OnnxValue y = run_hardswish_chain(last ? donated : *x, last ? &donated : nullptr);
      if (options.profile)
        (*options.profile)["HardSwishChain"] +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      live[c.y] = std::move(y);
      continue;
    }
    std::vector<const OnnxValue*> in;
    for (const std::string& name : n.inputs) in.push_back(name.empty() ? nullptr : value(name));
    OnnxValue transformed;
    if (const auto t = transforms_.find(k); t != transforms_.end() && in[0]) {
      transformed = *in[0];
      t->second(transformed);
      in[0] = &transformed;
    }
    if (options.observe) options.observe(k, in);
    // Input 0 read by no later node, and not twice by this one: the op may reuse it.
    OnnxValue donated;
    OnnxValue* donate = nullptr;
    if (!n.inputs.empty() && in[0] && in[0] != &transformed &&
        std::count(n.inputs.begin(), n.inputs.end(), n.inputs[0]) == 1)
      if (const auto r = last_reader_.find(n.inputs[0]); r != last_reader_.end() && r->second == k)
        if (const auto v = live.find(n.inputs[0]); v != live.end()) {
          donated = std::move(v->second);
          live.erase(v);
          in[0] = donate = &donated;
        }
    if (in[0] == &transformed && transformed.numel() > 0) donate = &transformed;
    OnnxOpContext c{n, model_.opset(), where_of(model_, n, k)};
    c.donated = donate;
    if (const auto p = packed_.find(k); p != packed_.end()) c.packed = p->second.get();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<OnnxValue> out = find_onnx_op(n.op_type)->run(c, in);
    if (options.profile)
      (*options.profile)[n.op_type] +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (out.size() < n.outputs.size())
      for (size_t o = out.size(); o < n.outputs.size(); ++o)
        if (!n.outputs[o].empty()) c.fail("output " + std::to_string(o) + " is not computed");
    for (size_t o = 0; o < n.outputs.size(); ++o)
      if (!n.outputs[o].empty()) live[n.outputs[o]] = std::move(out[o]);
    for (const std::string& name : n.inputs)  // free what no later node reads
      if (const auto it = last_reader_.find(name); it != last_reader_.end() && it->second == k)
        live.erase(name);
  }
  std::map<std::string, OnnxValue> result;
  for (const OnnxValueInfo& v : g.outputs) {
    const OnnxValue* p = value(v.name);
    if (!p) throw Error(model_.path, "graph output '" + v.name + "' was not computed");
    result[v.name] = *p;
  }
  return result;
}

}  // namespace mcw
