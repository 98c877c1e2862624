// ONNX model files (onnx.proto, IR 3 and later): the graph (nodes, their attributes, the
// graph's inputs and outputs), the initializers and Constant nodes' values as tensors, and
// the operator sets it imports. Weights stay in the file: an initializer's raw_data is a
// view of the mapped file; only values stored in the typed repeated fields (small ones, by
// exporters' habit) are copied. Weights in external data files are read from files inside
// the model's folder only. Nothing in the file runs; every problem is an mcw::Error naming
// the file and, for malformed protobuf, the byte offset.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/mapped_file.h"
#include "engine/core/tensor.h"

namespace mcw {

struct OnnxAttribute {
  // AttributeProto.AttributeType
  enum Type {
    Undefined = 0,
    Float = 1,
    Int = 2,
    String = 3,
    Tensor = 4,
    Graph = 5,
    Floats = 6,
    Ints = 7,
    Strings = 8
  };
  std::string name;
  Type type = Undefined;
  float f = 0;
  int64_t i = 0;
  std::string s;
  mcw::Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
};

struct OnnxNode {
  std::string name, op_type, domain;         // domain "" is the default (ai.onnx)
  std::vector<std::string> inputs, outputs;  // "" marks an omitted optional input
  std::vector<OnnxAttribute> attributes;
  const OnnxAttribute* attribute(const std::string& name) const;
};

// A graph input or output: element type (TensorProto.DataType) and shape, -1 where a
// dimension is symbolic (its name in dim_params) or unknown.
struct OnnxValueInfo {
  std::string name;
  int32_t elem_type = 0;
  std::vector<int64_t> dims;
  std::vector<std::string> dim_params;
};

struct OnnxGraph {
  std::string name;
  std::vector<OnnxNode> nodes;  // in the file's order (ONNX requires a topological one)
  std::vector<Tensor> initializers;
  std::vector<OnnxValueInfo> inputs, outputs;
};

struct OnnxModel {
  std::string path;
  int64_t ir_version = 0;
  std::string producer;                   // producer_name and version
  std::map<std::string, int64_t> opsets;  // domain ("" = ai.onnx) -> version
  OnnxGraph graph;
  std::shared_ptr<const MappedFile> file;  // the initializers' raw_data views point into it

  int64_t opset() const;  // the default domain's version (0 when not imported)
  // The weights, in file order: initializers, then Constant nodes' values (named by their
  // output).
  std::vector<Tensor> weights() const;
};

// The ONNX opsets MCW reads (the 9–17).
inline constexpr int64_t kOnnxMinOpset = 9, kOnnxMaxOpset = 17;

OnnxModel read_onnx(const std::string& path);
// A file holding one TensorProto (ONNX's test data: input_0.pb, output_0.pb).
Tensor read_onnx_tensor(const std::string& path);

// TensorProto.DataType -> MCW's dtype; throws mcw::Error naming `where` for types MCW does
// not hold (strings, complex, float8).
DType onnx_dtype(int32_t data_type, const std::string& where);

}  // namespace mcw
