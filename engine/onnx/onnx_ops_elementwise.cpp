// Element-wise operators: binary ones with numpy broadcasting (Add, Sub, Mul, Div, Pow)
// and unary ones (activations, Sqrt, Clip, Cast, ...), parallel over rows of the output.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "engine/core/half.h"
#include "engine/onnx/onnx_ops.h"

namespace mcw {

namespace {

Shape broadcast_shape(const OnnxOpContext& c, const Shape& a, const Shape& b) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t k = 0; k < r; ++k) {
    const int64_t da = k + a.size() >= r ? a[k + a.size() - r] : 1;
    const int64_t db = k + b.size() >= r ? b[k + b.size() - r] : 1;
    if (da != db && da != 1 && db != 1)
      c.fail("shapes " + shape_string(a) + " and " + shape_string(b) + " do not broadcast");
    out[k] = da == 1 ? db : da;
  }
  return out;
}

// Strides of `s` seen from an output of rank `r` (0 along broadcast dimensions).
std::vector<int64_t> broadcast_strides(const Shape& s, const Shape& out) {
  const std::vector<int64_t> st = strides_of(s);
  std::vector<int64_t> b(out.size(), 0);
  for (size_t k = 0; k < s.size(); ++k) {
    const size_t o = k + out.size() - s.size();
    b[o] = s[k] == 1 ? 0 : st[k];
  }
  return b;
}

// y[idx] = f(a[...], b[...]) over the broadcast shape `out`, one task per row of the last
// axis. y may be a's own buffer when a has the output's shape (each element is read before
// it is written, at the same index).
template <class T, class F>
void broadcast_into(T* y, const T* a, const Shape& sa, const T* b, const Shape& sb,
                    const Shape& out, F f) {
  int64_t n = 1;
  for (int64_t d : out) n *= d;
  if (n == 0) return;
  if (sa == sb) {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 4096), [&](const auto& r) {
      for (int64_t k = r.begin(); k < r.end(); ++k) y[k] = f(a[k], b[k]);
    });
    return;
  }
  const std::vector<int64_t> ta = broadcast_strides(sa, out), tb = broadcast_strides(sb, out);
  const int64_t last = out.empty() ? 1 : out.back(), rows = n / last;
  const int64_t la = out.empty() ? 0 : ta.back(), lb = out.empty() ? 0 : tb.back();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, std::max<int64_t>(1, 4096 / last)),
                    [&](const auto& r) {
                      for (int64_t row = r.begin(); row < r.end(); ++row) {
                        int64_t oa = 0, ob = 0, rem = row;
                        for (int64_t k = int64_t(out.size()) - 2; k >= 0; --k) {
                          const int64_t i = rem % out[size_t(k)];
                          rem /= out[size_t(k)];
                          oa += i * ta[size_t(k)], ob += i * tb[size_t(k)];
                        }
                        T* dst = y + row * last;
                        const T* pa = a + oa;
                        const T* pb = b + ob;
                        // The usual cases get loops the compiler vectorises: both
                        // contiguous along the last axis, or one constant along it (a
                        // per-channel scale, a scalar).
                        if (la == 1 && lb == 1)
                          for (int64_t j = 0; j < last; ++j) dst[j] = f(pa[j], pb[j]);
                        else if (la == 1 && lb == 0)
                          for (int64_t j = 0; j < last; ++j) dst[j] = f(pa[j], *pb);
                        else if (la == 0 && lb == 1)
                          for (int64_t j = 0; j < last; ++j) dst[j] = f(*pa, pb[j]);
                        else
                          for (int64_t j = 0; j < last; ++j) dst[j] = f(pa[j * la], pb[j * lb]);
                      }
                    });
}

template <class T, class F>
std::vector<T> broadcast(const std::vector<T>& a, const Shape& sa, const std::vector<T>& b,
                         const Shape& sb, const Shape& out, F f) {
  int64_t n = 1;
  for (int64_t d : out) n *= d;
  std::vector<T> y(static_cast<size_t>(n));
  broadcast_into(y.data(), a.data(), sa, b.data(), sb, out, f);
  return y;
}

// Add, Sub, Mul, Div, Pow of one pair of elements.
template <int Op, class T>
T apply(T x, T y) {
  if constexpr (Op == 0)
    return x + y;
  else if constexpr (Op == 1)
    return x - y;
  else if constexpr (Op == 2)
    return x * y;
  else if constexpr (Op == 3)
    return x / y;
  else
    return T(std::pow(x, y));
}

template <int Op>
std::vector<OnnxValue> binary(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue &a = c.need(in, 0), &b = c.need(in, 1);
  if (a.is_float != b.is_float) c.fail("inputs of different types");
  const Shape out = broadcast_shape(c, a.shape, b.shape);
  // A lambda, not &apply<Op, float>: through a function pointer every element was an
  // indirect call, and the loops did not vectorise.
  const auto f = [](float x, float y) { return apply<Op, float>(x, y); };
  if (a.is_float && c.donated == &a && out == a.shape) {  // in place
    broadcast_into(c.donated->f.data(), a.f.data(), a.shape, b.f.data(), b.shape, out, f);
    return {std::move(*c.donated)};
  }
  if (a.is_float) return {OnnxValue::floats(out, broadcast(a.f, a.shape, b.f, b.shape, out, f))};
  if (Op == 4) c.fail("integer Pow is not supported");
  std::atomic<bool> div_by_zero{false};
  auto g = [&](int64_t x, int64_t y) -> int64_t {
    if (Op == 3 && y == 0) return div_by_zero.store(true, std::memory_order_relaxed), 0;
    return apply<Op, int64_t>(x, y);
  };
  OnnxValue v = OnnxValue::ints(out, broadcast(a.i, a.shape, b.i, b.shape, out, g));
  if (div_by_zero) c.fail("integer division by zero");
  return {v};
}

template <class F>
std::vector<OnnxValue> unary_float(const OnnxOpContext& c, std::span<const OnnxValue* const> in,
                                   F f) {
  const OnnxValue& x = c.need(in, 0);
  if (!x.is_float) c.fail("expects a floating-point input");
  const bool in_place = c.donated == &x;  // each element read, then written
  OnnxValue y =
      in_place ? std::move(*c.donated) : OnnxValue::floats(x.shape, std::vector<float>(x.f.size()));
  const float* src = in_place ? y.f.data() : x.f.data();
  tbb::parallel_for(tbb::blocked_range<size_t>(0, y.f.size(), 4096), [&](const auto& r) {
    for (size_t k = r.begin(); k < r.end(); ++k) y.f[k] = f(src[k]);
  });
  return {y};
}

std::vector<OnnxValue> relu(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  return unary_float(c, in, [](float x) { return x > 0 ? x : 0.0f; });
}
std::vector<OnnxValue> sigmoid(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  return unary_float(c, in, [](float x) { return 1.0f / (1.0f + std::exp(-x)); });
}
std::vector<OnnxValue> hard_sigmoid(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const float alpha = c.attr_float("alpha", 0.2f), beta = c.attr_float("beta", 0.5f);
  return unary_float(c, in, [=](float x) { return std::clamp(alpha * x + beta, 0.0f, 1.0f); });
}
std::vector<OnnxValue> hard_swish(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  return unary_float(c, in, [](float x) { return x * std::clamp(x / 6.0f + 0.5f, 0.0f, 1.0f); });
}
std::vector<OnnxValue> sqrt_op(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  return unary_float(c, in, [](float x) { return std::sqrt(x); });
}
std::vector<OnnxValue> exp_op(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  return unary_float(c, in, [](float x) { return std::exp(x); });
}
std::vector<OnnxValue> tanh_op(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  return unary_float(c, in, [](float x) { return std::tanh(x); });
}

std::vector<OnnxValue> floor_op(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  return unary_float(c, in, [](float x) { return std::floor(x); });
}

// QuantizeLinear / DequantizeLinear (opsets 10, 13): one scale and zero point, or one per
// slice along `axis` (opset 13) when the scale is a 1-D array; uint8 codes unless the zero
// point is int8. Quantising rounds half to even and saturates.
struct QuantAxis {
  int64_t outer = 1, n = 1, inner = 1;  // the value as [outer, n, inner], n scales
};
QuantAxis quant_axis(const OnnxOpContext& c, const Shape& shape, const OnnxValue& scale,
                     const OnnxValue* zero) {
  QuantAxis q;
  if (scale.numel() == 1) {
    for (int64_t d : shape) q.outer *= d;
  } else {
    if (c.opset < 13 || scale.shape.size() != 1)
      c.fail("per-axis scales need opset 13 and 1-D scales");
    const int64_t axis = normalize_axis(c.attr_int("axis", 1), int64_t(shape.size()), c.where);
    q.n = shape[size_t(axis)];
    if (scale.numel() != q.n) c.fail("the scales do not match the axis");
    for (int64_t d = 0; d < axis; ++d) q.outer *= shape[size_t(d)];
    for (size_t d = size_t(axis) + 1; d < shape.size(); ++d) q.inner *= shape[d];
  }
  if (zero && (zero->is_float || zero->numel() != scale.numel()))
    c.fail("the zero point must be an integer of the scale's shape");
  return q;
}

std::vector<OnnxValue> quantize_linear(const OnnxOpContext& c,
                                       std::span<const OnnxValue* const> in) {
  const OnnxValue &x = c.need(in, 0), &scale = c.need(in, 1);
  const OnnxValue* zero = c.input(in, 2);
  if (!x.is_float || !scale.is_float) c.fail("expects a floating-point value and scale");
  const QuantAxis q = quant_axis(c, x.shape, scale, zero);
  const bool i8 = zero && zero->int_type == DType::I8;
  if (zero && !i8 && zero->int_type != DType::U8) c.fail("codes must be uint8 or int8");
  const float lo = i8 ? -128.0f : 0.0f, hi = i8 ? 127.0f : 255.0f;
  OnnxValue y = OnnxValue::ints(x.shape);
  y.int_type = i8 ? DType::I8 : DType::U8;
  for (int64_t o = 0, k = 0; o < q.outer; ++o)
    for (int64_t a = 0; a < q.n; ++a) {
      const float s = scale.f[size_t(a)], z = zero ? float(zero->i[size_t(a)]) : 0.0f;
      for (int64_t e = 0; e < q.inner; ++e, ++k)
        y.i[size_t(k)] = int64_t(std::clamp(std::nearbyint(x.f[size_t(k)] / s) + z, lo, hi));
    }
  return {y};
}

std::vector<OnnxValue> dequantize_linear(const OnnxOpContext& c,
                                         std::span<const OnnxValue* const> in) {
  const OnnxValue &x = c.need(in, 0), &scale = c.need(in, 1);
  const OnnxValue* zero = c.input(in, 2);
  if (x.is_float || !scale.is_float) c.fail("expects integer codes and a floating-point scale");
  const QuantAxis q = quant_axis(c, x.shape, scale, zero);
  OnnxValue y = OnnxValue::floats(x.shape);
  for (int64_t o = 0, k = 0; o < q.outer; ++o)
    for (int64_t a = 0; a < q.n; ++a) {
      const float s = scale.f[size_t(a)], z = zero ? float(zero->i[size_t(a)]) : 0.0f;
      for (int64_t e = 0; e < q.inner; ++e, ++k) y.f[size_t(k)] = (float(x.i[size_t(k)]) - z) * s;
    }
  return {y};
}

std::vector<OnnxValue> identity(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  return {take_input(c, c.need(in, 0))};
}

// Clip: bounds from attributes before opset 11, from optional scalar inputs after.
std::vector<OnnxValue> clip(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = c.need(in, 0);
  double lo = -std::numeric_limits<double>::infinity(),
         hi = std::numeric_limits<double>::infinity();
  if (c.opset < 11) {
    lo = c.attr_float("min", -std::numeric_limits<float>::infinity());
    hi = c.attr_float("max", std::numeric_limits<float>::infinity());
  } else {
    auto bound = [&](size_t k, double& b) {
      if (const OnnxValue* v = c.input(in, k)) {
        if (v->numel() != 1) c.fail("Clip's bounds must be scalars");
        b = v->is_float ? double(v->f[0]) : double(v->i[0]);
      }
    };
    bound(1, lo), bound(2, hi);
  }
  OnnxValue y = take_input(c, x);
  if (y.is_float)
    for (float& v : y.f) v = float(std::min(std::max(double(v), lo), hi));
  else
    for (int64_t& v : y.i) v = int64_t(std::min(std::max(double(v), lo), hi));
  return {y};
}

// Cast: to a floating type (f32 as MCW computes them) or to an integer / bool one.
std::vector<OnnxValue> cast(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = c.need(in, 0);
  const int64_t to = c.attr_int("to", 0);
  const bool to_float = to == 1 || to == 10 || to == 11 || to == 16;
  const bool to_int = (to >= 2 && to <= 7) || to == 9 || to == 12 || to == 13;
  if (!to_float && !to_int) c.fail("Cast to ONNX type " + std::to_string(to) + " is not supported");
  if (to_float) {
    if (x.is_float) {  // computed in f32, rounded to the narrower type's precision
      OnnxValue y = take_input(c, x);
      if (to == 10)
        for (float& v : y.f) v = f16_to_f32(f32_to_f16(v));
      if (to == 16)
        for (float& v : y.f) v = bf16_to_f32(f32_to_bf16(v));
      return {y};
    }
    std::vector<float> v(x.i.size());
    for (size_t k = 0; k < v.size(); ++k) v[k] = float(x.i[k]);
    return {OnnxValue::floats(x.shape, std::move(v))};
  }
  std::vector<int64_t> v(size_t(x.numel()));
  for (size_t k = 0; k < v.size(); ++k) {
    const double d = x.is_float ? double(x.f[k]) : double(x.i[k]);
    v[k] = to == 9 ? int64_t(d != 0) : x.is_float ? int64_t(std::trunc(d)) : x.i[k];
  }
  OnnxValue y = OnnxValue::ints(x.shape, std::move(v));
  y.int_type = to == 2 ? DType::U8 : to == 3 ? DType::I8 : DType::I64;
  return {y};
}

}  // namespace

std::vector<OnnxOp> onnx_elementwise_ops() {
  return {{"Add", binary<0>},
          {"Sub", binary<1>},
          {"Mul", binary<2>},
          {"Div", binary<3>},
          {"Pow", binary<4>},
          {"Relu", relu},
          {"Sigmoid", sigmoid},
          {"HardSigmoid", hard_sigmoid},
          {"HardSwish", hard_swish},
          {"Sqrt", sqrt_op},
          {"Exp", exp_op},
          {"Tanh", tanh_op},
          {"Identity", identity},
          {"Clip", clip},
          {"Cast", cast},
          {"Floor", floor_op},
          {"QuantizeLinear", quantize_linear},
          {"DequantizeLinear", dequantize_linear}};
}

}  // namespace mcw
