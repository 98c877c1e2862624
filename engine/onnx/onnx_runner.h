// Runs an ONNX graph with MCW's operators (onnx_ops.h), node by node in the file's order
// (ONNX requires it topological), each value freed after its last reader. Before any work
// the constructor refuses a graph with an operator MCW does not run, naming the operator and
// the node, and a node reading a value nothing produces.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/io/onnx.h"
#include "engine/onnx/onnx_value.h"

namespace mcw {

class OnnxRunner {
 public:
  explicit OnnxRunner(const OnnxModel& model);
  // The graph's outputs for these inputs (by the graph's input names). With `profile`, adds
  // each operator type's seconds to it.
  std::map<std::string, OnnxValue> run(const std::map<std::string, OnnxValue>& inputs,
                                       std::map<std::string, double>* profile = nullptr) const;

 private:
  const OnnxModel& model_;
  std::map<std::string, OnnxValue> weights_;   // initializers and Constant nodes' values
  std::set<size_t> constants_;                 // the Constant nodes, not run again
  std::map<std::string, size_t> last_reader_;  // value -> index of its last reading node
};

}  // namespace mcw
