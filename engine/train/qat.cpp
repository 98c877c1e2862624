#include "engine/train/qat.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "engine/compress/affine_quantizer.h"
#include "engine/core/error.h"
#include "engine/core/half.h"

namespace mcw {

namespace {

// The grid step as the layout stores it (positive, f16): the forward pass uses it, so that
// the packed layer decodes to exactly the weights training measured.
float stored_scale(float s) { return f16_to_f32(f32_to_f16(std::max(std::abs(s), 1e-7f))); }

// Group g's grid as the forward pass uses it: the stored scale, and the scheme's zero or
// the learnt one as the layout stores it (f16).
struct Grid {
  float scale, zero;
  bool learnt;  // a continuous zero (LSQ+), used unrounded
};
Grid grid(const QatLayer& l, size_t g) {
  if (l.zeros.empty()) return {stored_scale(l.scales[g]), l.scheme.zero_point(g), false};
  if (l.rule == QatRule::EfficientQat) {  // the learnt zero rounded onto the codes' range
    const float maxq = float(affine_levels(l.scheme.bits) - 1);
    return {stored_scale(l.scales[g]), std::nearbyint(std::clamp(l.zeros[g], 0.0f, maxq)), false};
  }
  return {stored_scale(l.scales[g]), f16_to_f32(f32_to_f16(l.zeros[g])), true};
}

// The unclamped code of v = w/s: round(v) + z for the scheme's integer zero (as
// affine_code computes it), round(v + z) for a learnt one.
float raw_code(float v, const Grid& p) {
  return p.learnt ? std::nearbyint(v + p.zero) : std::nearbyint(v) + p.zero;
}

// The code of w on grid p: affine_code's for the scheme's zero, round(w/s + z) clamped to
// the grid for a learnt one (a NaN weight to the zero's code, as affine_code does).
uint8_t code(float w, const Grid& p, int bits) {
  if (!p.learnt) return affine_code(w, {p.scale, p.zero}, bits);
  const float maxq = float(affine_levels(bits) - 1), q = raw_code(w / p.scale, p);
  return uint8_t(std::clamp(q == q ? q : std::nearbyint(p.zero), 0.0f, maxq));
}

float fake_quantize(float w, const Grid& p, int bits) {
  return affine_value(code(w, p, bits), {p.scale, p.zero});
}

// Calls fn(i, g) for every weight i = r·cols + c of row r with its group's index g, rows in
// parallel (each row's groups are its own, so the scale sums never race across tasks).
template <class Fn>
void for_each_weight(const CompressedTensor& s, Fn&& fn) {
  const int64_t G = s.groups();
  tbb::parallel_for(int64_t(0), s.rows, [&](int64_t r) {
    for (int64_t c = 0; c < s.cols; ++c) fn(r * s.cols + c, size_t(r * G + s.group_of(c)));
  });
}

}  // namespace

QatLayer qat_layer(const CompressedTensor& c, const Tensor& start, bool learn_zeros,
                   QatRule rule) {
  if (c.coding != WeightCoding::Affine)
    throw Error(c.name, "quantisation-aware training needs an affine (group-wise) quantised layer");
  if (!c.g_idx.empty() || !c.input_scale.empty() || !c.outlier_index.empty())
    throw Error(c.name,
                "quantisation-aware training does not handle act-order, AWQ scales or outliers");
  if (start.ndim() != 2 || start.dim(0) != c.rows || start.dim(1) != c.cols)
    throw Error(c.name, "the starting weight's shape is not the layer's");
  QatLayer l;
  l.scheme = c;
  l.scheme.codes.clear();
  l.latent = Tensor::from_f32(start.to_f32(), start.shape(), c.name);
  l.rule = rule;
  l.scales = c.scales;
  if ((learn_zeros || rule == QatRule::EfficientQat) && !c.symmetric) l.zeros = c.zeros;
  return l;
}

void qat_fake_quantize(const QatLayer& l, Tensor& out) {
  const int bits = l.scheme.bits;
  const float* w = l.latent.as<float>();
  float* o = out.mutable_as<float>();
  for_each_weight(l.scheme, [&](int64_t i, size_t g) {
    o[i] = l.scheme.kept(i) ? fake_quantize(w[i], grid(l, g), bits) : 0.0f;
  });
}

void qat_gradients(const QatLayer& l, const Tensor& dfake, Tensor& dlatent,
                   std::span<float> dscales, std::span<float> dzeros) {
  const int bits = l.scheme.bits;
  const float maxq = float(affine_levels(bits) - 1);
  const int64_t n_group = l.scheme.group_size > 0 ? l.scheme.group_size : l.scheme.cols;
  const float lsq =
      l.rule == QatRule::Lsq ? float(1.0 / std::sqrt(double(n_group) * maxq)) : 1.0f;
  const float* w = l.latent.as<float>();
  const float* d = dfake.as<float>();
  float* dw = dlatent.mutable_as<float>();
  for_each_weight(l.scheme, [&](int64_t i, size_t g) {
    if (!l.scheme.kept(i)) return;
    const Grid p = grid(l, g);
    const float s = p.scale, z = p.zero, v = w[i] / s;
    const float q = raw_code(v, p);
    // ∂ŵ/∂s: the code less the zero less v inside the range (LSQ's round(v) − v for an
    // integer zero), the clamped code less the zero outside; ∂ŵ/∂z: −s where clamped.
    float ds;
    if (q < 0 || q > maxq) {
      ds = (q < 0 ? 0.0f : maxq) - z;
      if (!l.zeros.empty()) dzeros[g] -= lsq * d[i] * s;
    } else {
      dw[i] += d[i];
      ds = q - z - v;
    }
    dscales[g] += lsq * d[i] * ds;
  });
}

CompressedTensor qat_pack(const QatLayer& l) {
  CompressedTensor c = l.scheme;
  c.scales.resize(l.scales.size());
  for (size_t g = 0; g < c.scales.size(); ++g) c.scales[g] = stored_scale(l.scales[g]);
  if (!l.zeros.empty())
    for (size_t g = 0; g < c.zeros.size(); ++g) c.zeros[g] = grid(l, g).zero;
  const float* w = l.latent.as<float>();
  std::vector<uint8_t> q(static_cast<size_t>(c.rows * c.cols));
  for_each_weight(c, [&](int64_t i, size_t g) {
    q[size_t(i)] = c.kept(i) ? code(w[i], grid(l, g), c.bits) : 0;
  });
  c.codes = pack_codes(q.data(), q.size(), c.bits);
  return c;
}

}  // namespace mcw
