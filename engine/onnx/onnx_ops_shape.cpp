// Operators that move values without computing new ones: Constant, Shape, Reshape,
// Flatten, Transpose, Squeeze, Unsqueeze, Concat, Slice, Gather. Attributes that became
// inputs in later opsets (Squeeze/Unsqueeze axes at 13, Slice starts/ends at 10) are read
// from wherever the node's opset puts them.
#include <algorithm>
#include <numeric>

#include "engine/onnx/onnx_ops.h"

namespace mcw {

namespace {

// A copy of x's elements gathered by an index map (dst k reads src idx[k]).
OnnxValue gather_elements(const OnnxValue& x, Shape shape, const std::vector<int64_t>& idx) {
  if (x.is_float) {
    std::vector<float> v(idx.size());
    for (size_t k = 0; k < idx.size(); ++k) v[k] = x.f[size_t(idx[k])];
    return OnnxValue::floats(std::move(shape), std::move(v));
  }
  std::vector<int64_t> v(idx.size());
  for (size_t k = 0; k < idx.size(); ++k) v[k] = x.i[size_t(idx[k])];
  return OnnxValue::ints(std::move(shape), std::move(v));
}

OnnxValue reshaped(OnnxValue v, Shape s) {
  v.shape = std::move(s);
  return v;
}

std::vector<OnnxValue> constant(const OnnxOpContext& c, std::span<const OnnxValue* const>) {
  const OnnxAttribute* v = c.attr("value");
  if (!v || v->type != OnnxAttribute::Tensor)
    c.fail("Constant without a tensor 'value' is not supported");
  return {OnnxValue::of(v->t)};
}

// Shape, with opset 15's start and end (clamped, negative from the end).
std::vector<OnnxValue> shape_op(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const Shape& s = c.need(in, 0).shape;
  const int64_t r = int64_t(s.size());
  auto at = [&](int64_t v) { return std::clamp(v < 0 ? v + r : v, int64_t(0), r); };
  const int64_t b = at(c.attr_int("start", 0)), e = at(c.attr_int("end", r));
  std::vector<int64_t> v(s.begin() + b, s.begin() + std::max(b, e));
  const int64_t n = int64_t(v.size());  // before v is moved from
  return {OnnxValue::ints({n}, std::move(v))};
}

std::vector<OnnxValue> reshape(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = c.need(in, 0);
  std::vector<int64_t> want = c.opset < 5 ? c.attr_ints("shape") : c.ints_of(c.need(in, 1));
  const bool allowzero = c.attr_int("allowzero", 0) != 0;
  int64_t known = 1, infer = -1;
  for (size_t k = 0; k < want.size(); ++k) {
    if (want[k] == 0 && !allowzero) {
      if (k >= x.shape.size()) c.fail("Reshape copies a dimension the input lacks");
      want[k] = x.shape[k];
    }
    if (want[k] == -1) {
      if (infer >= 0) c.fail("Reshape with two -1 dimensions");
      infer = int64_t(k);
    } else if (want[k] < 0) {
      c.fail("Reshape to a negative dimension");
    } else {
      known *= want[k];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known) c.fail("Reshape cannot infer the -1 dimension");
    want[size_t(infer)] = x.numel() / known;
  }
  if (std::accumulate(want.begin(), want.end(), int64_t(1), std::multiplies<>()) != x.numel())
    c.fail("Reshape of " + shape_string(x.shape) + " to " + shape_string(want) +
           " changes the element count");
  return {reshaped(take_input(c, x), want)};
}

std::vector<OnnxValue> flatten(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = c.need(in, 0);
  const int64_t r = int64_t(x.shape.size());
  int64_t axis = c.attr_int("axis", 1);
  axis = axis < 0 ? axis + r : axis;
  if (axis < 0 || axis > r) c.fail("Flatten axis out of range");
  int64_t outer = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= x.shape[size_t(k)];
  Shape out = {outer, outer ? x.numel() / outer : 0};
  return {reshaped(take_input(c, x), std::move(out))};
}

std::vector<OnnxValue> transpose(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = c.need(in, 0);
  const size_t r = x.shape.size();
  std::vector<int64_t> perm = c.attr_ints("perm");
  if (perm.empty())
    for (size_t k = 0; k < r; ++k) perm.push_back(int64_t(r - 1 - k));
  if (perm.size() != r) c.fail("Transpose perm has the wrong length");
  std::vector<bool> seen(r, false);
  Shape out(r);
  for (size_t k = 0; k < r; ++k) {
    const int64_t p = normalize_axis(perm[k], int64_t(r), c.where);
    if (seen[size_t(p)]) c.fail("Transpose perm repeats an axis");
    seen[size_t(p)] = true, out[k] = x.shape[size_t(p)];
  }
  const std::vector<int64_t> src = strides_of(x.shape);
  std::vector<int64_t> idx(size_t(x.numel()));
  std::vector<int64_t> pos(r, 0);
  for (size_t k = 0; k < idx.size(); ++k) {
    int64_t o = 0;
    for (size_t d = 0; d < r; ++d)
      o += pos[d] * src[size_t(perm[d] < 0 ? perm[d] + int64_t(r) : perm[d])];
    idx[k] = o;
    for (int64_t d = int64_t(r) - 1; d >= 0; --d) {
      if (++pos[size_t(d)] < out[size_t(d)]) break;
      pos[size_t(d)] = 0;
    }
  }
  return {gather_elements(x, out, idx)};
}

std::vector<int64_t> axes_of(const OnnxOpContext& c, std::span<const OnnxValue* const> in,
                             int64_t since) {
  if (c.opset >= since) {
    const OnnxValue* a = c.input(in, 1);
    return a ? c.ints_of(*a) : std::vector<int64_t>{};
  }
  return c.attr_ints("axes");
}

std::vector<OnnxValue> squeeze(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = c.need(in, 0);
  const int64_t r = int64_t(x.shape.size());
  std::vector<bool> drop(size_t(r), false);
  const std::vector<int64_t> axes = axes_of(c, in, 13);
  for (int64_t a : axes) {
    const int64_t k = normalize_axis(a, r, c.where);
    if (x.shape[size_t(k)] != 1)
      c.fail("Squeeze of an axis of size " + std::to_string(x.shape[size_t(k)]));
    drop[size_t(k)] = true;
  }
  Shape out;
  for (int64_t k = 0; k < r; ++k)
    if (!(axes.empty() ? x.shape[size_t(k)] == 1 : drop[size_t(k)]))
      out.push_back(x.shape[size_t(k)]);
  return {reshaped(take_input(c, x), out)};
}

std::vector<OnnxValue> unsqueeze(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = c.need(in, 0);
  const std::vector<int64_t> axes = axes_of(c, in, 13);
  const int64_t r = int64_t(x.shape.size() + axes.size());
  std::vector<bool> add(size_t(r), false);
  for (int64_t a : axes) {
    const int64_t k = normalize_axis(a, r, c.where);
    if (add[size_t(k)]) c.fail("Unsqueeze repeats an axis");
    add[size_t(k)] = true;
  }
  Shape out;
  size_t next = 0;
  for (int64_t k = 0; k < r; ++k) out.push_back(add[size_t(k)] ? 1 : x.shape[next++]);
  return {reshaped(take_input(c, x), out)};
}

std::vector<OnnxValue> concat(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& first = c.need(in, 0);
  const int64_t r = int64_t(first.shape.size());
  const int64_t axis = normalize_axis(c.attr_int("axis", 0), r, c.where);
  Shape out = first.shape;
  out[size_t(axis)] = 0;
  for (size_t k = 0; k < in.size(); ++k) {
    const OnnxValue& v = c.need(in, k);
    if (v.is_float != first.is_float || int64_t(v.shape.size()) != r)
      c.fail("Concat of mismatched inputs");
    for (int64_t d = 0; d < r; ++d)
      if (d != axis && v.shape[size_t(d)] != first.shape[size_t(d)])
        c.fail("Concat of mismatched shapes");
    out[size_t(axis)] += v.shape[size_t(axis)];
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out[size_t(d)];
  for (int64_t d = axis + 1; d < r; ++d) inner *= out[size_t(d)];
  OnnxValue y = first.is_float ? OnnxValue::floats(out) : OnnxValue::ints(out);
  int64_t at = 0;  // offset along the axis
  for (size_t k = 0; k < in.size(); ++k) {
    const OnnxValue& v = *in[k];
    const int64_t n = v.shape[size_t(axis)] * inner;
    for (int64_t o = 0; o < outer; ++o)
      if (first.is_float)
        std::copy_n(v.f.begin() + o * n, n, y.f.begin() + (o * out[size_t(axis)] + at) * inner);
      else
        std::copy_n(v.i.begin() + o * n, n, y.i.begin() + (o * out[size_t(axis)] + at) * inner);
    at += v.shape[size_t(axis)];
  }
  return {y};
}

// Slice: starts/ends (clamped as numpy does), optional axes and steps.
std::vector<OnnxValue> slice(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = c.need(in, 0);
  const int64_t r = int64_t(x.shape.size());
  std::vector<int64_t> starts, ends, axes, steps;
  if (c.opset < 10) {
    starts = c.attr_ints("starts"), ends = c.attr_ints("ends"), axes = c.attr_ints("axes");
  } else {
    starts = c.ints_of(c.need(in, 1)), ends = c.ints_of(c.need(in, 2));
    if (const OnnxValue* a = c.input(in, 3)) axes = c.ints_of(*a);
    if (const OnnxValue* s = c.input(in, 4)) steps = c.ints_of(*s);
  }
  if (axes.empty())
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(int64_t(k));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.fail("Slice's starts, ends, axes and steps differ in length");
  std::vector<int64_t> begin(size_t(r), 0), step(size_t(r), 1);
  Shape out = x.shape;
  for (size_t k = 0; k < starts.size(); ++k) {
    const int64_t a = normalize_axis(axes[k], r, c.where), dim = x.shape[size_t(a)];
    const int64_t st = steps[k];
    if (st == 0) c.fail("Slice step 0");
    auto clampi = [&](int64_t v, int64_t lo, int64_t hi) { return std::min(std::max(v, lo), hi); };
    int64_t s = starts[k] < 0 ? starts[k] + dim : starts[k];
    int64_t e = ends[k] < 0 ? ends[k] + dim : ends[k];
    if (st > 0)
      s = clampi(s, 0, dim), e = clampi(e, 0, dim);
    else
      s = clampi(s, 0, dim - 1), e = clampi(e, -1, dim - 1);
    const int64_t n =
        st > 0 ? (e > s ? (e - s + st - 1) / st : 0) : (s > e ? (s - e - st - 1) / -st : 0);
    begin[size_t(a)] = s, step[size_t(a)] = st, out[size_t(a)] = n;
  }
  const std::vector<int64_t> src = strides_of(x.shape);
  int64_t n = 1;
  for (int64_t d : out) n *= d;
  std::vector<int64_t> idx(static_cast<size_t>(n)), pos(static_cast<size_t>(r), 0);
  for (size_t k = 0; k < idx.size(); ++k) {
    int64_t o = 0;
    for (int64_t d = 0; d < r; ++d)
      o += (begin[size_t(d)] + pos[size_t(d)] * step[size_t(d)]) * src[size_t(d)];
    idx[k] = o;
    for (int64_t d = r - 1; d >= 0; --d) {
      if (++pos[size_t(d)] < out[size_t(d)]) break;
      pos[size_t(d)] = 0;
    }
  }
  return {gather_elements(x, out, idx)};
}

std::vector<OnnxValue> gather(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = c.need(in, 0);
  const OnnxValue& ind = c.need(in, 1);
  const std::vector<int64_t> indices = c.ints_of(ind);
  const int64_t r = int64_t(x.shape.size());
  const int64_t axis = normalize_axis(c.attr_int("axis", 0), r, c.where),
                dim = x.shape[size_t(axis)];
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[size_t(d)];
  for (int64_t d = axis + 1; d < r; ++d) inner *= x.shape[size_t(d)];
  Shape out(x.shape.begin(), x.shape.begin() + axis);
  out.insert(out.end(), ind.shape.begin(), ind.shape.end());
  out.insert(out.end(), x.shape.begin() + axis + 1, x.shape.end());
  std::vector<int64_t> idx;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t g : indices) {
      const int64_t k = g < 0 ? g + dim : g;
      if (k < 0 || k >= dim) c.fail("Gather index " + std::to_string(g) + " out of range");
      for (int64_t j = 0; j < inner; ++j) idx.push_back((o * dim + k) * inner + j);
    }
  return {gather_elements(x, out, idx)};
}

}  // namespace

std::vector<OnnxOp> onnx_shape_ops() {
  return {{"Constant", constant},   {"Shape", shape_op},      {"Reshape", reshape},
          {"Flatten", flatten},     {"Transpose", transpose}, {"Squeeze", squeeze},
          {"Unsqueeze", unsqueeze}, {"Concat", concat},       {"Slice", slice},
          {"Gather", gather}};
}

}  // namespace mcw
