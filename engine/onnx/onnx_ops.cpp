#include "engine/onnx/onnx_ops.h"

#include <algorithm>

#include "engine/core/error.h"

namespace mcw {

void OnnxOpContext::fail(const std::string& what) const { throw Error(where, what); }

int64_t OnnxOpContext::attr_int(const char* name, int64_t fallback) const {
  const OnnxAttribute* a = attr(name);
  return a ? a->i : fallback;
}

float OnnxOpContext::attr_float(const char* name, float fallback) const {
  const OnnxAttribute* a = attr(name);
  return a ? a->f : fallback;
}

std::vector<int64_t> OnnxOpContext::attr_ints(const char* name) const {
  const OnnxAttribute* a = attr(name);
  return a ? a->ints : std::vector<int64_t>{};
}

std::string OnnxOpContext::attr_string(const char* name, const std::string& fallback) const {
  const OnnxAttribute* a = attr(name);
  return a ? a->s : fallback;
}

const OnnxValue& OnnxOpContext::need(std::span<const OnnxValue* const> in, size_t k) const {
  const OnnxValue* v = input(in, k);
  if (!v) fail("input " + std::to_string(k) + " is missing");
  return *v;
}

std::vector<int64_t> OnnxOpContext::ints_of(const OnnxValue& v) const {
  if (v.is_float) fail("expects an integer input");
  return v.i;
}

static const std::vector<OnnxOp>& table() {
  static const std::vector<OnnxOp> all = [] {
    std::vector<OnnxOp> t;
    for (auto group : {onnx_elementwise_ops, onnx_shape_ops, onnx_nn_ops})
      for (const OnnxOp& op : group()) t.push_back(op);
    return t;
  }();
  return all;
}

const OnnxOp* find_onnx_op(const std::string& op_type) {
  for (const OnnxOp& op : table())
    if (op_type == op.type) return &op;
  return nullptr;
}

std::vector<std::string> onnx_op_names() {
  std::vector<std::string> n;
  for (const OnnxOp& op : table()) n.push_back(op.type);
  std::sort(n.begin(), n.end());
  return n;
}

}  // namespace mcw
