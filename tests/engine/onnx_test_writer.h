// A small ONNX model written field by field (protobuf's wire format from the encoding's
// rules, onnx.proto's field numbers), for the ONNX reader's tests and fuzz seeds.
#pragma once
#include <cctype>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "engine/io/protobuf_write.h"

namespace mcw::test {

// A protobuf message being written (engine/io/protobuf_write.h's fields, chained).
struct Pb {
  std::string b;
  Pb& varint(uint64_t v) {
    pb::varint(b, v);
    return *this;
  }
  Pb& key(uint32_t field, int wire) {
    pb::key(b, field, uint32_t(wire));
    return *this;
  }
  Pb& i(uint32_t field, int64_t v) {
    pb::int_field(b, field, v);
    return *this;
  }
  Pb& bytes(uint32_t field, std::string_view s) {
    pb::bytes_field(b, field, s);
    return *this;
  }
  Pb& msg(uint32_t field, const Pb& m) { return bytes(field, m.b); }
  Pb& f32(uint32_t field, float f) {
    pb::float_field(b, field, f);
    return *this;
  }
  template <class T>
  static std::string raw(const std::vector<T>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  static Pb packed(const std::vector<int64_t>& v) {
    Pb p;
    for (int64_t x : v) p.varint(uint64_t(x));
    return p;
  }
};

// TensorProto: dims 1, data_type 2, float_data 4, int64_data 7, name 8, raw_data 9.
inline Pb onnx_tensor(const std::string& name, int type, const std::vector<int64_t>& dims) {
  Pb t;
  for (int64_t d : dims) t.i(1, d);
  t.i(2, type).bytes(8, name);
  return t;
}

// AttributeProto: name 1, f 2, i 3, t 5, ints 8, type 20.
inline Pb ints_attr(const std::string& name, const std::vector<int64_t>& v) {
  Pb a;
  a.bytes(1, name).msg(8, Pb::packed(v)).i(20, 7);
  return a;
}

// ValueInfoProto{name 1, type 2: TypeProto{tensor_type 1: {elem_type 1, shape 2: {dim 1: {dim_value
// 1 | dim_param 2}}}}}
inline Pb onnx_value(const std::string& name, const std::vector<std::string>& dims) {
  Pb shape;
  for (const std::string& d : dims) {
    Pb dim;
    if (std::isdigit(uint8_t(d[0])))
      dim.i(1, std::stoll(d));
    else
      dim.bytes(2, d);
    shape.msg(1, dim);
  }
  Pb tt;
  tt.i(1, 1).msg(2, shape);
  Pb type;
  type.msg(1, tt);
  Pb v;
  v.bytes(1, name).msg(2, type);
  return v;
}

inline const std::vector<float> kOnnxW = {0.5f, -1.25f, 2.0f, 3.5f, -0.75f, 1.0f};

// A graph of Conv → Relu with a Constant, four initializers in four encodings, and
// ModelProto{ir_version 1, producer_name 2, producer_version 3, graph 7, opset_import 8}.
inline std::string onnx_model(int64_t opset = 13, const Pb* extra_initializer = nullptr) {
  Pb g;
  g.bytes(2, "tiny");
  Pb conv;
  conv.bytes(1, "x").bytes(1, "W").bytes(1, "").bytes(2, "y").bytes(3, "conv0").bytes(4, "Conv");
  conv.msg(5, ints_attr("kernel_shape", {1, 3}));
  Pb group;
  group.bytes(1, "group").i(3, 1).i(20, 2);
  conv.msg(5, group);
  g.msg(1, conv);
  Pb relu;
  relu.bytes(1, "y").bytes(2, "z").bytes(4, "Relu");
  g.msg(1, relu);
  Pb cvalue = onnx_tensor("", 1, {2});
  cvalue.msg(4, [] {
    Pb p;
    for (float f : {7.0f, -8.0f}) {
      char c[4];
      std::memcpy(c, &f, 4);
      p.b.append(c, 4);
    }
    return p;
  }());
  Pb cattr;
  cattr.bytes(1, "value").msg(5, cvalue).i(20, 4);
  Pb constant;
  constant.bytes(2, "c").bytes(4, "Constant").msg(5, cattr);
  g.msg(1, constant);
  g.msg(5, onnx_tensor("W", 1, {2, 1, 1, 3}).bytes(9, Pb::raw(kOnnxW)));  // f32 raw_data
  Pb bias = onnx_tensor("B", 1, {2});  // f32 float_data, unpacked
  bias.f32(4, 0.25f).f32(4, -4.0f);
  g.msg(5, bias);
  g.msg(5, onnx_tensor("shape", 7, {3}).msg(7, Pb::packed({1, -1, 6})));  // int64_data, packed
  const std::vector<uint16_t> half = {0x3c00, 0xc000};                    // 1.0, -2.0 in f16
  g.msg(5, onnx_tensor("h", 10, {2}).bytes(9, Pb::raw(half)));            // f16 raw_data
  if (extra_initializer) g.msg(5, *extra_initializer);
  g.msg(11, onnx_value("x", {"1", "1", "H", "8"})).msg(12, onnx_value("z", {"1", "2", "H", "6"}));
  Pb opset_id;
  opset_id.bytes(1, "").i(2, opset);
  Pb m;
  m.i(1, 8).bytes(2, "mcw-test").bytes(3, "1.0").msg(7, g).msg(8, opset_id);
  return m.b;
}

}  // namespace mcw::test
