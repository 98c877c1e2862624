// Runs an ONNX graph with MCW's operators (onnx_ops.h), node by node in the file's order
// (ONNX requires it topological), each value freed after its last reader. Before any work
// the constructor refuses a graph with an operator MCW does not run, naming the operator and
// the node, and a node reading a value nothing produces.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "engine/io/onnx.h"
#include "engine/onnx/onnx_fusion.h"
#include "engine/onnx/onnx_packed.h"
#include "engine/onnx/onnx_value.h"

namespace mcw {

// What one run may do beside computing: time operators, watch nodes' inputs.
struct OnnxRunOptions {
  std::map<std::string, double>* profile = nullptr;  // adds each operator type's seconds
  // Called with each node's inputs (null for an omitted optional one) before it runs, after
  // transform_input (calibration reads the layers' inputs here).
  std::function<void(size_t node, std::span<const OnnxValue* const> in)> observe;
};

class OnnxRunner {
 public:
  using Weights = std::map<std::string, OnnxValue>;
  // `replaced`: values run instead of the graph's weights of the same names (a compressed
  // model's decoded weights); a name that is no weight, or a shape that differs, is an
  // mcw::Error.
  explicit OnnxRunner(const OnnxModel& model, Weights replaced = {});
  // The same graph as `base`, sharing its converted weights (no second f32 copy of the
  // model), with `replaced` instead of some of them, shared too: the caller keeps it alive
  // as long as this runner. Transforms and packed layers are not taken from `base`.
  OnnxRunner(const OnnxRunner& base, std::shared_ptr<const Weights> replaced);
  // What the constructor refuses, without converting a single weight: for a command that
  // wants the refusal before its work and the runner only later (or never).
  static void check(const OnnxModel& model);
  // The graph's outputs for these inputs (by the graph's input names).
  std::map<std::string, OnnxValue> run(const std::map<std::string, OnnxValue>& inputs,
                                       const OnnxRunOptions& options = {}) const;
  // Node `node`'s first input goes through `fn` before the node runs (fake-quantised
  // activations); the node reads the transformed copy.
  void transform_input(size_t node, std::function<void(OnnxValue&)> fn);
  // These nodes multiply with their packed weights (onnx_packed.h); a node that is no Conv,
  // MatMul or Gemm is an mcw::Error.
  void use_packed(OnnxPackedLayers layers);
  const OnnxModel& model() const { return model_; }
  // The value nodes read for weight `name` (a replacement first); null for no weight.
  const OnnxValue* weight(const std::string& name) const;

 private:
  const OnnxModel& model_;
  // Initializers' and Constant nodes' values, converted once and shared between the runners
  // of one graph; then the replaced ones, looked up first.
  std::shared_ptr<const Weights> weights_, replaced_;
  void check_replaced(const Weights& replaced) const;
  std::set<size_t> constants_;                 // the Constant nodes, not run again
  std::map<std::string, size_t> last_reader_;  // value -> index of its last reading node
  std::map<size_t, std::function<void(OnnxValue&)>> transforms_;
  OnnxPackedLayers packed_;
  // Element-wise chains run as one pass (onnx_fusion.h): by the chain's first node, and the
  // nodes it replaces.
  std::map<size_t, HardSwishChain> chains_;
  std::set<size_t> fused_;
};

}  // namespace mcw
