// A value flowing through an ONNX graph as MCW runs it: a dense row-major array of f32
// (every floating type is computed in f32) or of int64 (every integer type and bool: the
// shape arithmetic ONNX graphs do on the side), with its ONNX element type kept so that
// Cast and outputs say what the graph meant.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace mcw {

struct OnnxValue {
  bool is_float = true;
  Shape shape;
  std::vector<float> f;    // when is_float
  std::vector<int64_t> i;  // otherwise
  // An integer value's type where an operator needs it (QuantizeLinear's zero point sets
  // the range of its codes): the weight's dtype, or what the operator made; I64 otherwise.
  DType int_type = DType::I64;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  static OnnxValue floats(Shape s, std::vector<float> v = {});  // zero-filled when v is empty
  static OnnxValue ints(Shape s, std::vector<int64_t> v = {});
  // A weight as the graph holds it (floats widened to f32, integers and bool to int64).
  static OnnxValue of(const Tensor& t);
  Tensor to_tensor(const std::string& name) const;  // F32 or I64
};

// Row-major strides of a shape.
std::vector<int64_t> strides_of(const Shape& s);
// An axis attribute (negative counts from the end) as 0..rank-1; throws mcw::Error naming
// `where` when it is out of range.
int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& where);

}  // namespace mcw
