#include "engine/onnx/onnx_value.h"

#include "engine/core/error.h"

namespace mcw {

OnnxValue OnnxValue::floats(Shape s, std::vector<float> v) {
  OnnxValue o;
  o.shape = std::move(s);
  o.f = v.empty() ? std::vector<float>(size_t(o.numel()), 0.0f) : std::move(v);
  return o;
}

OnnxValue OnnxValue::ints(Shape s, std::vector<int64_t> v) {
  OnnxValue o;
  o.is_float = false;
  o.shape = std::move(s);
  o.i = v.empty() ? std::vector<int64_t>(size_t(o.numel()), 0) : std::move(v);
  return o;
}

OnnxValue OnnxValue::of(const Tensor& t) {
  const DType d = t.dtype();
  if (d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::F64) {
    if (d == DType::F64) {
      std::vector<float> v(size_t(t.numel()));
      for (size_t k = 0; k < v.size(); ++k) v[k] = float(t.as<double>()[k]);
      return floats(t.shape(), std::move(v));
    }
    return floats(t.shape(), t.to_f32());
  }
  std::vector<int64_t> v(size_t(t.numel()));
  const auto* p = static_cast<const uint8_t*>(t.data());
  for (size_t k = 0; k < v.size(); ++k) switch (d) {
      case DType::I8:
        v[k] = reinterpret_cast<const int8_t*>(p)[k];
        break;
      case DType::U8:
      case DType::BOOL:
        v[k] = p[k];
        break;
      case DType::I16:
        v[k] = reinterpret_cast<const int16_t*>(p)[k];
        break;
      case DType::U16:
        v[k] = reinterpret_cast<const uint16_t*>(p)[k];
        break;
      case DType::I32:
        v[k] = reinterpret_cast<const int32_t*>(p)[k];
        break;
      case DType::U32:
        v[k] = reinterpret_cast<const uint32_t*>(p)[k];
        break;
      case DType::I64:
        v[k] = reinterpret_cast<const int64_t*>(p)[k];
        break;
      case DType::U64:
        v[k] = int64_t(reinterpret_cast<const uint64_t*>(p)[k]);
        break;
      default:
        throw Error(t.name(),
                    "an ONNX value of type " + std::string(dtype_name(d)) + " cannot be computed");
    }
  OnnxValue o = ints(t.shape(), std::move(v));
  o.int_type = d;
  return o;
}

Tensor OnnxValue::to_tensor(const std::string& name) const {
  if (is_float) return Tensor::from_f32(f, shape, name);
  Tensor t = Tensor::zeros(DType::I64, shape, name);
  std::copy(i.begin(), i.end(), t.mutable_as<int64_t>());
  return t;
}

std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int64_t k = int64_t(s.size()) - 2; k >= 0; --k)
    st[size_t(k)] = st[size_t(k + 1)] * s[size_t(k + 1)];
  return st;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& where) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    throw Error(where, "axis " + std::to_string(axis) + " is out of range for rank " +
                           std::to_string(rank));
  return a;
}

}  // namespace mcw
