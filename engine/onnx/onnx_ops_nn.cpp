// Network operators: MatMul and Gemm on the f32 GEMM kernels, Conv as im2col + GEMM per
// group, pooling, BatchNormalization (inference), Softmax and ReduceMean. Parallel through
// the GEMM's oneTBB tiles and per channel / row elsewhere.
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "engine/kernels/gemm.h"
#include "engine/onnx/onnx_conv.h"
#include "engine/onnx/onnx_ops.h"
#include "engine/onnx/onnx_packed.h"

namespace mcw {

namespace {

const OnnxValue& floats_in(const OnnxOpContext& c, std::span<const OnnxValue* const> in, size_t k) {
  const OnnxValue& v = c.need(in, k);
  if (!v.is_float) c.fail("expects floating-point input " + std::to_string(k));
  return v;
}

// MatMul with numpy semantics: 1-D operands promoted, batch dimensions broadcast.
std::vector<OnnxValue> matmul_op(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue &a = floats_in(c, in, 0), &b = floats_in(c, in, 1);
  Shape sa = a.shape, sb = b.shape;
  const bool a1 = sa.size() == 1, b1 = sb.size() == 1;
  if (a1) sa.insert(sa.begin(), 1);
  if (b1) sb.push_back(1);
  if (sa.size() < 2 || sb.size() < 2) c.fail("MatMul of scalars");
  const int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
  if (sb[sb.size() - 2] != k)
    c.fail("MatMul of " + shape_string(a.shape) + " and " + shape_string(b.shape));
  const Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  const size_t r = std::max(ba.size(), bb.size());
  Shape batch(r);
  for (size_t d = 0; d < r; ++d) {
    const int64_t x = d + ba.size() >= r ? ba[d + ba.size() - r] : 1,
                  y = d + bb.size() >= r ? bb[d + bb.size() - r] : 1;
    if (x != y && x != 1 && y != 1) c.fail("MatMul batch dimensions do not broadcast");
    batch[d] = std::max(x, y);
  }
  int64_t batches = 1;
  for (int64_t d : batch) batches *= d;
  Shape out = batch;
  if (!a1) out.push_back(m);
  if (!b1) out.push_back(n);
  OnnxValue y = OnnxValue::floats(out);
  if (c.packed) {  // a weight [k, n] packed as its transpose: every row of A at once
    if (b.shape.size() != 2 || c.packed->rows() != n || c.packed->cols() != k)
      c.fail("the packed weight does not match the MatMul's second input");
    c.packed->matmul(a.f.data(), y.f.data(), int64_t(a.f.size()) / k);
    return {y};
  }
  const std::vector<int64_t> sta = strides_of(ba), stb = strides_of(bb);
  for (int64_t t = 0; t < batches; ++t) {
    int64_t oa = 0, ob = 0, rem = t;
    for (int64_t d = int64_t(r) - 1; d >= 0; --d) {
      const int64_t i = rem % batch[size_t(d)];
      rem /= batch[size_t(d)];
      const int64_t da = int64_t(d) - int64_t(r - ba.size()),
                    db = int64_t(d) - int64_t(r - bb.size());
      if (da >= 0 && ba[size_t(da)] != 1) oa += i * sta[size_t(da)];
      if (db >= 0 && bb[size_t(db)] != 1) ob += i * stb[size_t(db)];
    }
    matmul(a.f.data() + oa * m * k, b.f.data() + ob * k * n, y.f.data() + t * m * n, m, n, k);
  }
  return {y};
}

// Gemm: Y = alpha · op(A) · op(B) + beta · C (C broadcast to [M, N]).
std::vector<OnnxValue> gemm_op(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue &a = floats_in(c, in, 0), &b = floats_in(c, in, 1);
  if (a.shape.size() != 2 || b.shape.size() != 2) c.fail("Gemm needs 2-D inputs");
  const bool ta = c.attr_int("transA", 0), tb = c.attr_int("transB", 0);
  const float alpha = c.attr_float("alpha", 1.0f), beta = c.attr_float("beta", 1.0f);
  const int64_t m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1];
  const int64_t n = tb ? b.shape[0] : b.shape[1];
  if ((tb ? b.shape[1] : b.shape[0]) != k) c.fail("Gemm of mismatched inner dimensions");
  OnnxValue y = OnnxValue::floats({m, n});
  std::vector<float> at, bt;
  const float* pa = a.f.data();
  if (ta) {  // A stored [k, m]
    at.resize(size_t(m * k));
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < m; ++j) at[size_t(j * k + i)] = a.f[size_t(i * m + j)];
    pa = at.data();
  }
  if (c.packed) {  // B packed as [n, k]
    if (c.packed->rows() != n || c.packed->cols() != k)
      c.fail("the packed weight does not match the Gemm's B");
    c.packed->matmul(pa, y.f.data(), m);
  } else if (tb) {
    matmul_wt(pa, b.f.data(), y.f.data(), m, n, k);
  } else {
    matmul(pa, b.f.data(), y.f.data(), m, n, k);
  }
  const OnnxValue* cc = c.input(in, 2);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float add = 0;
      if (cc) {
        const Shape& s = cc->shape;
        const int64_t ci = s.size() == 2 ? (s[0] == 1 ? 0 : i) : 0;
        const int64_t cj = s.empty() ? 0 : (s.back() == 1 ? 0 : j);
        add = cc->f[size_t(ci * (s.empty() ? 1 : s.back()) + cj)];
      }
      float& v = y.f[size_t(i * n + j)];
      v = alpha * v + beta * add;
    }
  return {y};
}

// Softmax: before opset 13 over the flattened dimensions from `axis` on (default 1); from
// 13 along `axis` (default -1).
std::vector<OnnxValue> softmax_op(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = floats_in(c, in, 0);
  const int64_t r = int64_t(x.shape.size());
  const int64_t axis = normalize_axis(c.attr_int("axis", c.opset < 13 ? 1 : -1), r, c.where);
  int64_t outer = 1, len = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[size_t(d)];
  if (c.opset < 13) {
    for (int64_t d = axis; d < r; ++d) len *= x.shape[size_t(d)];
  } else {
    len = x.shape[size_t(axis)];
    for (int64_t d = axis + 1; d < r; ++d) inner *= x.shape[size_t(d)];
  }
  OnnxValue y = x;
  tbb::parallel_for(int64_t(0), outer * inner, [&](int64_t job) {
    const int64_t o = job / inner, i = job % inner;
    float* p = y.f.data() + o * len * inner + i;
    float mx = -INFINITY;
    for (int64_t j = 0; j < len; ++j) mx = std::max(mx, p[j * inner]);
    double sum = 0;
    for (int64_t j = 0; j < len; ++j) sum += (p[j * inner] = std::exp(p[j * inner] - mx));
    for (int64_t j = 0; j < len; ++j) p[j * inner] = float(p[j * inner] / sum);
  });
  return {y};
}

std::vector<OnnxValue> reduce_mean(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = floats_in(c, in, 0);
  const int64_t r = int64_t(x.shape.size());
  std::vector<int64_t> axes =
      c.opset >= 18 && c.input(in, 1) ? c.ints_of(*c.input(in, 1)) : c.attr_ints("axes");
  std::vector<bool> reduce(size_t(r), axes.empty());
  for (int64_t a : axes) reduce[size_t(normalize_axis(a, r, c.where))] = true;
  const bool keep = c.attr_int("keepdims", 1) != 0;
  Shape kept_shape, out_shape;
  for (int64_t d = 0; d < r; ++d) {
    kept_shape.push_back(reduce[size_t(d)] ? 1 : x.shape[size_t(d)]);
    if (!reduce[size_t(d)] || keep) out_shape.push_back(reduce[size_t(d)] ? 1 : x.shape[size_t(d)]);
  }
  const std::vector<int64_t> ost = strides_of(kept_shape);
  std::vector<double> sum(size_t(std::max<int64_t>(1,
                                                   [&] {
                                                     int64_t n = 1;
                                                     for (int64_t d : kept_shape) n *= d;
                                                     return n;
                                                   }())),
                          0.0);
  std::vector<int64_t> pos(size_t(r), 0);
  for (size_t k = 0; k < x.f.size(); ++k) {
    int64_t o = 0;
    for (int64_t d = 0; d < r; ++d) o += (reduce[size_t(d)] ? 0 : pos[size_t(d)]) * ost[size_t(d)];
    sum[size_t(o)] += x.f[k];
    for (int64_t d = r - 1; d >= 0; --d) {
      if (++pos[size_t(d)] < x.shape[size_t(d)]) break;
      pos[size_t(d)] = 0;
    }
  }
  const double count = double(x.numel()) / double(sum.size());
  std::vector<float> v(sum.size());
  for (size_t k = 0; k < v.size(); ++k) v[k] = float(sum[k] / count);
  return {OnnxValue::floats(out_shape, std::move(v))};
}

// BatchNormalization in inference: y = (x − mean) / sqrt(var + eps) · scale + B per channel.
std::vector<OnnxValue> batch_norm(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = floats_in(c, in, 0);
  const OnnxValue &scale = floats_in(c, in, 1), &bias = floats_in(c, in, 2),
                  &mean = floats_in(c, in, 3), &var = floats_in(c, in, 4);
  if (c.attr_int("training_mode", 0))
    c.fail("BatchNormalization in training mode is not supported");
  if (x.shape.size() < 2) c.fail("BatchNormalization needs a channel axis");
  const float eps = c.attr_float("epsilon", 1e-5f);
  const int64_t n = x.shape[0], ch = x.shape[1], inner = x.numel() / std::max<int64_t>(1, n * ch);
  for (const OnnxValue* p : {&scale, &bias, &mean, &var})
    if (p->numel() != ch) c.fail("BatchNormalization parameters do not match the channels");
  OnnxValue y = x;
  tbb::parallel_for(int64_t(0), n * ch, [&](int64_t job) {
    const int64_t k = job % ch;
    const float s = scale.f[size_t(k)] / std::sqrt(var.f[size_t(k)] + eps),
                b = bias.f[size_t(k)] - mean.f[size_t(k)] * s;
    float* p = y.f.data() + job * inner;
    for (int64_t j = 0; j < inner; ++j) p[j] = p[j] * s + b;
  });
  return {y};
}

std::vector<OnnxValue> global_average_pool(const OnnxOpContext& c,
                                           std::span<const OnnxValue* const> in) {
  const OnnxValue& x = floats_in(c, in, 0);
  if (x.shape.size() < 3) c.fail("GlobalAveragePool needs N, C and spatial axes");
  const int64_t nc = x.shape[0] * x.shape[1], inner = x.numel() / std::max<int64_t>(1, nc);
  Shape out = {x.shape[0], x.shape[1]};
  out.resize(x.shape.size(), 1);
  OnnxValue y = OnnxValue::floats(out);
  for (int64_t k = 0; k < nc; ++k) {
    double s = 0;
    for (int64_t j = 0; j < inner; ++j) s += x.f[size_t(k * inner + j)];
    y.f[size_t(k)] = float(s / double(inner));
  }
  return {y};
}

std::vector<OnnxValue> average_pool(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = floats_in(c, in, 0);
  if (x.shape.size() != 4) c.fail("only 2-D pooling is supported");
  const auto k = c.attr_ints("kernel_shape");
  if (k.size() != 2) c.fail("kernel_shape must have two values");
  if (c.attr_int("ceil_mode", 0)) c.fail("ceil_mode is not supported");
  const bool include_pad = c.attr_int("count_include_pad", 0) != 0;
  const int64_t nc = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3];
  const Window g = conv_window(c, h, w, k[0], k[1]);
  OnnxValue y = OnnxValue::floats({x.shape[0], x.shape[1], g.oh, g.ow});
  tbb::parallel_for(int64_t(0), nc, [&](int64_t p) {
    const float* src = x.f.data() + p * h * w;
    float* dst = y.f.data() + p * g.oh * g.ow;
    for (int64_t i = 0; i < g.oh; ++i)
      for (int64_t j = 0; j < g.ow; ++j) {
        double s = 0;
        int64_t n = 0;
        for (int64_t a = 0; a < g.kh; ++a)
          for (int64_t b = 0; b < g.kw; ++b) {
            const int64_t yy = i * g.sh - g.ph0 + a * g.dh, xx = j * g.sw - g.pw0 + b * g.dw;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            s += src[yy * w + xx], ++n;
          }
        dst[i * g.ow + j] = float(s / double(include_pad ? g.kh * g.kw : std::max<int64_t>(n, 1)));
      }
  });
  return {y};
}

// Conv (2-D): per image and group, the input patches as columns (im2col) times the
// group's filters, plus the bias.
std::vector<OnnxValue> conv(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue &x = floats_in(c, in, 0), &wt = floats_in(c, in, 1);
  const OnnxValue* bias = c.input(in, 2);
  if (x.shape.size() != 4 || wt.shape.size() != 4) c.fail("only 2-D convolutions are supported");
  const int64_t n = x.shape[0], ci = x.shape[1], h = x.shape[2], w = x.shape[3];
  const int64_t co = wt.shape[0], cig = wt.shape[1], kh = wt.shape[2], kw = wt.shape[3];
  const int64_t groups = c.attr_int("group", 1);
  if (groups <= 0 || ci != cig * groups || co % groups) c.fail("channels do not match the groups");
  if (const auto ks = c.attr_ints("kernel_shape");
      !ks.empty() && (ks.size() != 2 || ks[0] != kh || ks[1] != kw))
    c.fail("kernel_shape does not match the weight");
  if (bias && bias->numel() != co) c.fail("bias does not match the output channels");
  const Window g = conv_window(c, h, w, kh, kw);
  const int64_t cog = co / groups, patch = cig * kh * kw, pixels = g.oh * g.ow;
  OnnxValue y = OnnxValue::floats({n, co, g.oh, g.ow});
  if (c.packed) {
    if (groups != 1 || c.packed->rows() != co || c.packed->cols() != patch ||
        (!c.packed->channels().empty() && c.packed->channel_columns() != kh * kw))
      c.fail("the packed weight does not match the convolution");
    for (int64_t img = 0; img < n; ++img)
      packed_conv_image(*c.packed, x.f.data() + img * ci * h * w, ci, h, w, g,
                        bias ? bias->f.data() : nullptr, y.f.data() + img * co * pixels);
    return {y};
  }
  if (cig == 1 && cog == 1) {  // depthwise: one small filter per channel, computed directly
    tbb::parallel_for(int64_t(0), n * co, [&](int64_t job) {
      const int64_t ch = job % co;
      const float* src = x.f.data() + job * h * w;
      const float* k = wt.f.data() + ch * kh * kw;
      float* out = y.f.data() + job * pixels;
      const float b = bias ? bias->f[size_t(ch)] : 0.0f;
      // Row by row, tap by tap, over the output columns whose input column is inside the
      // image (no test per pixel): the loop over j vectorises.
      for (int64_t i = 0; i < g.oh; ++i) {
        float* row = out + i * g.ow;
        std::fill(row, row + g.ow, b);
        for (int64_t a = 0; a < kh; ++a) {
          const int64_t yy = i * g.sh - g.ph0 + a * g.dh;
          if (yy < 0 || yy >= h) continue;
          const float* in = src + yy * w;
          for (int64_t q = 0; q < kw; ++q) {
            const int64_t off = q * g.dw - g.pw0;  // xx = j·sw + off
            const int64_t j0 = std::max<int64_t>(0, (-off + g.sw - 1) / g.sw);
            const int64_t last = w - 1 - off;  // the largest j·sw (none when negative)
            const int64_t j1 = last < 0 ? 0 : std::min<int64_t>(g.ow, last / g.sw + 1);
            const float kv = k[a * kw + q];
            if (g.sw == 1)
              for (int64_t j = j0; j < j1; ++j) row[j] += kv * in[j + off];
            else
              for (int64_t j = j0; j < j1; ++j) row[j] += kv * in[j * g.sw + off];
          }
        }
      }
    });
    return {y};
  }
  for (int64_t img = 0; img < n; ++img)
    for (int64_t gr = 0; gr < groups; ++gr)
      conv_group_f32(wt.f.data() + gr * cog * patch, cog,
                     x.f.data() + (img * ci + gr * cig) * h * w, cig, h, w, g,
                     bias ? bias->f.data() + gr * cog : nullptr,
                     y.f.data() + (img * co + gr * cog) * pixels);
  return {y};
}

// ConvTranspose (2-D): every input pixel scatters its filter into the output, which is
// sh·(h−1) + output_padding + (kh−1)·dh + 1 − pads high (or output_shape, its padding split
// as the spec says for ConvTranspose: the extra half at the end for SAME_UPPER).
std::vector<OnnxValue> conv_transpose(const OnnxOpContext& c,
                                      std::span<const OnnxValue* const> in) {
  const OnnxValue &x = floats_in(c, in, 0), &wt = floats_in(c, in, 1);
  const OnnxValue* bias = c.input(in, 2);
  if (x.shape.size() != 4 || wt.shape.size() != 4)
    c.fail("only 2-D transposed convolutions are supported");
  const int64_t n = x.shape[0], ci = x.shape[1], h = x.shape[2], w = x.shape[3];
  const int64_t groups = c.attr_int("group", 1), cog = wt.shape[1], kh = wt.shape[2],
                kw = wt.shape[3];
  if (groups <= 0 || wt.shape[0] != ci || ci % groups) c.fail("channels do not match the groups");
  const int64_t co = cog * groups, cig = ci / groups;
  if (bias && bias->numel() != co) c.fail("bias does not match the output channels");
  auto two = [&](const char* name, int64_t fallback) {
    std::vector<int64_t> v = c.attr_ints(name);
    if (v.empty()) v = {fallback, fallback};
    if (v.size() != 2) c.fail(std::string(name) + " must have two values");
    return v;
  };
  const auto st = two("strides", 1), dl = two("dilations", 1), op = two("output_padding", 0);
  std::vector<int64_t> pads = c.attr_ints("pads");
  if (pads.empty()) pads = {0, 0, 0, 0};
  if (pads.size() != 4) c.fail("only 2-D pads are supported");
  const int64_t ekh = (kh - 1) * dl[0] + 1, ekw = (kw - 1) * dl[1] + 1;
  int64_t oh = st[0] * (h - 1) + op[0] + ekh - pads[0] - pads[2],
          ow = st[1] * (w - 1) + op[1] + ekw - pads[1] - pads[3];
  const std::string auto_pad = c.attr_string("auto_pad", "NOTSET");
  std::vector<int64_t> out_shape = c.attr_ints("output_shape");
  if (out_shape.size() > 2) out_shape.erase(out_shape.begin(), out_shape.end() - 2);
  if (!out_shape.empty() || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    if (out_shape.empty()) out_shape = {h * st[0], w * st[1]};
    if (out_shape.size() != 2) c.fail("output_shape must have two spatial values");
    for (int d = 0; d < 2; ++d) {
      const int64_t total = st[size_t(d)] * ((d ? w : h) - 1) + op[size_t(d)] + (d ? ekw : ekh) -
                            out_shape[size_t(d)];
      const int64_t t = std::max<int64_t>(total, 0);
      const bool lower = auto_pad == "SAME_LOWER";
      pads[size_t(d)] = lower ? t - t / 2 : t / 2, pads[size_t(d + 2)] = t - pads[size_t(d)];
    }
    oh = out_shape[0], ow = out_shape[1];
  } else if (auto_pad != "NOTSET" && auto_pad != "VALID") {
    c.fail("auto_pad " + auto_pad + " is not supported");
  }
  if (oh <= 0 || ow <= 0) c.fail("the output would be empty");
  OnnxValue y = OnnxValue::floats({n, co, oh, ow});
  if (cig > 1) {
    // Per image and group, every input pixel's contributions at once, a GEMM:
    // cols [cog·kh·kw, h·w] = W_gᵀ · X_g, W_g [cig, cog·kh·kw] as stored; then each output
    // channel gathers its kh·kw rows into place (col2im), one channel per task.
    const int64_t taps = kh * kw, pixels = h * w;
    std::vector<float> cols(size_t(cog * taps * pixels));
    for (int64_t img = 0; img < n; ++img)
      for (int64_t gr = 0; gr < groups; ++gr) {
        matmul_at(wt.f.data() + gr * cig * cog * taps, x.f.data() + (img * ci + gr * cig) * pixels,
                  cols.data(), cog * taps, pixels, cig);
        tbb::parallel_for(int64_t(0), cog, [&](int64_t og) {
          const int64_t o = gr * cog + og;
          float* out = y.f.data() + (img * co + o) * oh * ow;
          if (bias) std::fill(out, out + oh * ow, bias->f[size_t(o)]);
          for (int64_t a = 0; a < kh; ++a)
            for (int64_t b = 0; b < kw; ++b) {
              const float* src = cols.data() + ((og * kh + a) * kw + b) * pixels;
              for (int64_t i = 0; i < h; ++i) {
                const int64_t yy = i * st[0] - pads[0] + a * dl[0];
                if (yy < 0 || yy >= oh) continue;
                for (int64_t j = 0; j < w; ++j) {
                  const int64_t xx = j * st[1] - pads[1] + b * dl[1];
                  if (xx >= 0 && xx < ow) out[yy * ow + xx] += src[i * w + j];
                }
              }
            }
        });
      }
    return {y};
  }
  tbb::parallel_for(int64_t(0), n * co, [&](int64_t job) {
    const int64_t img = job / co, o = job % co, gr = o / cog, og = o % cog;
    float* out = y.f.data() + job * oh * ow;
    if (bias) std::fill(out, out + oh * ow, bias->f[size_t(o)]);
    for (int64_t cc = 0; cc < cig; ++cc) {
      const int64_t ch = gr * cig + cc;
      const float* src = x.f.data() + (img * ci + ch) * h * w;
      const float* k = wt.f.data() + (ch * cog + og) * kh * kw;
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j)
          for (int64_t a = 0; a < kh; ++a) {
            const int64_t yy = i * st[0] - pads[0] + a * dl[0];
            if (yy < 0 || yy >= oh) continue;
            for (int64_t b = 0; b < kw; ++b) {
              const int64_t xx = j * st[1] - pads[1] + b * dl[1];
              if (xx >= 0 && xx < ow) out[yy * ow + xx] += src[i * w + j] * k[a * kw + b];
            }
          }
    }
  });
  return {y};
}

// Resize of the two spatial axes (4-D), nearest or linear, with the coordinate and nearest
// rounding modes of opset 11 (opset 10: scales as input 1, asymmetric coordinates).
std::vector<OnnxValue> resize(const OnnxOpContext& c, std::span<const OnnxValue* const> in) {
  const OnnxValue& x = floats_in(c, in, 0);
  if (x.shape.size() != 4) c.fail("only 4-D Resize is supported");
  const std::string mode = c.attr_string("mode", "nearest");
  const std::string coord =
      c.opset < 11 ? "asymmetric" : c.attr_string("coordinate_transformation_mode", "half_pixel");
  const std::string nearest =
      c.opset < 11 ? "floor" : c.attr_string("nearest_mode", "round_prefer_floor");
  if (mode != "nearest" && mode != "linear") c.fail("Resize mode " + mode + " is not supported");
  const OnnxValue* scales_in = c.input(in, c.opset < 11 ? 1 : 2);
  const OnnxValue* sizes_in = c.opset < 11 ? nullptr : c.input(in, 3);
  std::vector<double> scale(4, 1.0), out_len(4);  // out_len: x · scale, unfloored, as the spec's
  Shape out = x.shape;
  if (scales_in && scales_in->numel() > 0) {
    if (scales_in->numel() != 4 || !scales_in->is_float) c.fail("Resize needs four scales");
    for (int d = 0; d < 4; ++d) {
      scale[size_t(d)] = scales_in->f[size_t(d)],
      out_len[size_t(d)] = double(x.shape[size_t(d)]) * scale[size_t(d)];
      out[size_t(d)] = int64_t(std::floor(out_len[size_t(d)]));
    }
  } else if (sizes_in && sizes_in->numel() == 4) {
    const std::vector<int64_t> sz = c.ints_of(*sizes_in);
    for (int d = 0; d < 4; ++d)
      out[size_t(d)] = sz[size_t(d)], out_len[size_t(d)] = double(sz[size_t(d)]),
      scale[size_t(d)] = double(sz[size_t(d)]) / double(x.shape[size_t(d)]);
  } else {
    c.fail("Resize needs scales or sizes");
  }
  if (out[0] != x.shape[0] || out[1] != x.shape[1])
    c.fail("Resize of the batch or channel axis is not supported");
  auto source = [&](int64_t o, int d) {  // the input coordinate of output index o on axis d
    const double s = scale[size_t(d)], in_len = double(x.shape[size_t(d)]),
                 len = out_len[size_t(d)];
    if (coord == "asymmetric") return double(o) / s;
    if (coord == "align_corners") return len > 1 ? double(o) * (in_len - 1) / (len - 1) : 0.0;
    if (coord == "pytorch_half_pixel") return len > 1 ? (double(o) + 0.5) / s - 0.5 : 0.0;
    if (coord == "half_pixel") return (double(o) + 0.5) / s - 0.5;
    c.fail("coordinate_transformation_mode " + coord + " is not supported");
  };
  auto round_nearest = [&](double v) -> int64_t {
    if (nearest == "floor") return int64_t(std::floor(v));
    if (nearest == "ceil") return int64_t(std::ceil(v));
    const double f = std::floor(v);
    if (v - f == 0.5) return int64_t(nearest == "round_prefer_ceil" ? f + 1 : f);
    return int64_t(std::round(v));
  };
  const int64_t h = x.shape[2], w = x.shape[3], oh = out[2], ow = out[3];
  std::vector<double> ys(static_cast<size_t>(oh)), xs(static_cast<size_t>(ow));
  for (int64_t i = 0; i < oh; ++i) ys[size_t(i)] = source(i, 2);
  for (int64_t j = 0; j < ow; ++j) xs[size_t(j)] = source(j, 3);
  OnnxValue y = OnnxValue::floats(out);
  // Each output row's and column's source, computed once (not per pixel): nearest indices,
  // or the two neighbours and the weight of the second.
  struct Tap {
    int64_t lo = 0, hi = 0;
    double t = 0;
  };
  auto taps = [&](const std::vector<double>& pos, int64_t len) {
    std::vector<Tap> out(pos.size());
    for (size_t k = 0; k < pos.size(); ++k) {
      if (mode == "nearest") {
        out[k].lo = std::clamp<int64_t>(round_nearest(pos[k]), 0, len - 1);
        continue;
      }
      const double f = std::clamp(pos[k], 0.0, double(len - 1));
      out[k].lo = int64_t(f), out[k].hi = std::min(out[k].lo + 1, len - 1);
      out[k].t = f - double(out[k].lo);
    }
    return out;
  };
  const std::vector<Tap> ty = taps(ys, h), tx = taps(xs, w);
  const bool nearest_mode = mode == "nearest";
  tbb::parallel_for(int64_t(0), x.shape[0] * x.shape[1], [&](int64_t p) {
    const float* src = x.f.data() + p * h * w;
    float* dst = y.f.data() + p * oh * ow;
    for (int64_t i = 0; i < oh; ++i) {
      const Tap& a = ty[size_t(i)];
      const float *r0 = src + a.lo * w, *r1 = src + a.hi * w;
      float* row = dst + i * ow;
      if (nearest_mode) {
        for (int64_t j = 0; j < ow; ++j) row[j] = r0[tx[size_t(j)].lo];
        continue;
      }
      for (int64_t j = 0; j < ow; ++j) {
        const Tap& b = tx[size_t(j)];
        row[j] = float((1 - a.t) * ((1 - b.t) * r0[b.lo] + b.t * r0[b.hi]) +
                       a.t * ((1 - b.t) * r1[b.lo] + b.t * r1[b.hi]));
      }
    }
  });
  return {y};
}

}  // namespace

std::vector<OnnxOp> onnx_nn_ops() {
  return {{"MatMul", matmul_op},
          {"Gemm", gemm_op},
          {"Softmax", softmax_op},
          {"ReduceMean", reduce_mean},
          {"BatchNormalization", batch_norm},
          {"GlobalAveragePool", global_average_pool},
          {"AveragePool", average_pool},
          {"Conv", conv},
          {"ConvTranspose", conv_transpose},
          {"Resize", resize}};
}

}  // namespace mcw
