// The ONNX operators MCW runs, one table: each op's function reads its node (attributes,
// the opset it was written for) and input values and returns its outputs. Groups of ops live
// in their own files (onnx_ops_elementwise.cpp, onnx_ops_shape.cpp, onnx_ops_nn.cpp); each
// exports its table rows. An operator variant an op does not implement (an attribute value,
// a type) is an mcw::Error naming the node, never a wrong answer.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "engine/io/onnx.h"
#include "engine/onnx/onnx_value.h"

namespace mcw {

class OnnxPackedLayer;

struct OnnxOpContext {
  const OnnxNode& node;
  int64_t opset = 0;  // the model's default-domain opset
  std::string where;  // "file: node 'name' (Op)" for messages
  // Input 0's value when no later node reads it (the runner moved it out of its live
  // values): an op whose output has its shape and type may compute into it and return it,
  // saving an allocation and a pass over memory. Null otherwise.
  OnnxValue* donated = nullptr;
  // The node's weight in a deployment layout (onnx_packed.h): Conv, MatMul and Gemm multiply
  // with it instead of their weight input, which then only gives the shape. Null otherwise.
  const OnnxPackedLayer* packed = nullptr;

  [[noreturn]] void fail(const std::string& what) const;
  const OnnxAttribute* attr(const char* name) const { return node.attribute(name); }
  int64_t attr_int(const char* name, int64_t fallback) const;
  float attr_float(const char* name, float fallback) const;
  std::vector<int64_t> attr_ints(const char* name) const;  // empty when absent
  std::string attr_string(const char* name, const std::string& fallback) const;
  // Input k when present (an omitted optional input is "" in the node and null here).
  const OnnxValue* input(std::span<const OnnxValue* const> in, size_t k) const {
    return k < in.size() ? in[k] : nullptr;
  }
  const OnnxValue& need(std::span<const OnnxValue* const> in, size_t k) const;
  std::vector<int64_t> ints_of(const OnnxValue& v) const;  // an int64 input's values
};

// x itself when the runner donated it (moved, no copy), else a copy: for ops whose output
// is their input with another shape (Reshape, Flatten, Squeeze, Unsqueeze, Identity).
inline OnnxValue take_input(const OnnxOpContext& c, const OnnxValue& x) {
  return c.donated == &x ? std::move(*c.donated) : x;
}

using OnnxOpFn = std::vector<OnnxValue> (*)(const OnnxOpContext& c,
                                            std::span<const OnnxValue* const> in);

struct OnnxOp {
  const char* type;
  OnnxOpFn run;
};

// Every supported operator of the default domain; null for others.
const OnnxOp* find_onnx_op(const std::string& op_type);
std::vector<std::string> onnx_op_names();

// The table rows of each group.
std::vector<OnnxOp> onnx_elementwise_ops();
std::vector<OnnxOp> onnx_shape_ops();
std::vector<OnnxOp> onnx_nn_ops();

}  // namespace mcw
