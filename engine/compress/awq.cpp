#include "engine/compress/awq.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/kernels/gemm.h"

namespace mcw {

std::vector<float> awq_scales(const float* x, int64_t n, int64_t cols, float alpha) {
  std::vector<double> mean(size_t(cols), 0.0);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t j = 0; j < cols; ++j) mean[size_t(j)] += std::fabs(double(x[s * cols + j]));
  std::vector<float> sc(static_cast<size_t>(cols));
  float lo = INFINITY, hi = 0;
  for (int64_t j = 0; j < cols; ++j) {
    // Dead channels (mean 0) get the floor AWQ uses instead of a zero scale.
    const float v =
        std::max(float(std::pow(mean[size_t(j)] / double(std::max<int64_t>(n, 1)), alpha)), 1e-4f);
    sc[size_t(j)] = v, lo = std::min(lo, v), hi = std::max(hi, v);
  }
  const float norm = std::sqrt(lo * hi);
  for (float& v : sc) v /= norm;
  return sc;
}

void round_scales_to_f16(std::vector<float>& s) {
  constexpr float kMinNormalF16 = 6.103515625e-05f;
  for (float& v : s) {
    const float h = f16_to_f32(f32_to_f16(v));
    if (std::isfinite(h) && h >= kMinNormalF16) v = h;
  }
}

Tensor awq_effective_weight(const CompressedTensor& scaled, const std::vector<float>& s) {
  if (s.size() != size_t(scaled.cols))
    throw Error(scaled.name, "awq scale has " + std::to_string(s.size()) + " entries for " +
                                 std::to_string(scaled.cols) + " columns");
  if (!scaled.input_scale.empty())
    throw Error(scaled.name, "awq scale given for a tensor that already has an input scale");
  CompressedTensor t = scaled;
  t.input_scale = s;
  return t.dequantize();
}

LayerStats scale_layer_stats(const LayerStats& st, const std::vector<float>& s) {
  const int64_t n = st.cols;
  if (s.size() != size_t(n) || st.xtx.size() != size_t(n * n) || st.sq_norm.size() != size_t(n) ||
      st.max_abs.size() != size_t(n))
    throw Error("layer statistics", "scale of " + std::to_string(s.size()) +
                                        " entries does not fit statistics of " + std::to_string(n) +
                                        " columns");
  LayerStats out = st;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j)
      out.xtx[size_t(i * n + j)] /= double(s[size_t(i)]) * double(s[size_t(j)]);
    out.sq_norm[size_t(i)] /= double(s[size_t(i)]) * double(s[size_t(i)]);
    out.max_abs[size_t(i)] /= s[size_t(i)];
  }
  return out;
}

std::vector<float> scaled_columns(const float* w, int64_t rows, int64_t cols,
                                  const std::vector<float>& s) {
  std::vector<float> ws(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) ws[size_t(r * cols + c)] = w[r * cols + c] * s[size_t(c)];
  return ws;
}

AffineParams awq_clip_params(float lo, float hi, int bits, bool symmetric, float shrink) {
  const float m = std::max(-lo, hi) * shrink;
  return affine_params_range(std::max(lo, -m), std::min(hi, m), bits, symmetric);
}

namespace {

// Q(W·s)/s of one layer, f32 [rows, cols]: what quantize_rtn(W·s).dequantize() / s gives,
// group by group in one pass (the search builds one per candidate α, and at 14336 columns
// three full-size intermediate copies cost more than the rounding).
std::vector<float> effective_weight(const AwqLayer& l, int64_t cols, const std::vector<float>& s,
                                    const RtnOptions& rtn) {
  std::vector<float> p(size_t(l.rows * cols));
  const int64_t gs = rtn.group_size;
  tbb::parallel_for(int64_t(0), l.rows, [&](int64_t r) {
    float scaled[1024];
    std::vector<float> big(gs > 1024 ? size_t(gs) : 0);
    float* t = gs > 1024 ? big.data() : scaled;
    for (int64_t c0 = 0; c0 < cols; c0 += gs) {
      for (int64_t c = 0; c < gs; ++c) t[c] = l.w[r * cols + c0 + c] * s[size_t(c0 + c)];
      const AffineParams a =
          affine_params_search(t, gs, 1, nullptr, rtn.bits, rtn.symmetric, rtn.clip);
      for (int64_t c = 0; c < gs; ++c)
        p[size_t(r * cols + c0 + c)] = affine_round(t[c], a, rtn.bits) / s[size_t(c0 + c)];
    }
  });
  return p;
}

// ‖y_ref − X·ŵᵀ‖²
double output_error(const float* wq, int64_t rows, const float* x, int64_t n, int64_t cols,
                    const std::vector<float>& y_ref) {
  std::vector<float> y(size_t(n * rows));
  matmul_wt(x, wq, y.data(), n, rows, cols);
  double e = 0;
  for (size_t i = 0; i < y.size(); ++i) e += (double(y_ref[i]) - y[i]) * (double(y_ref[i]) - y[i]);
  return e;
}

// AWQ clipping: per row and group the shrink with the least (w − ŵ)ᵀ·G·(w − ŵ), G the
// Gram matrix of the group's (scaled) inputs on every step-th calibration row.
CompressedTensor clipped_layer(const std::vector<float>& ws, int64_t rows, int64_t cols,
                               const float* x, int64_t n, const std::vector<float>& s,
                               const AwqOptions& opt, const CancelToken* cancel,
                               const std::string& name) {
  const int64_t gs = opt.group_size, groups = cols / gs;
  const int64_t step = std::max<int64_t>(1, n / std::max<int64_t>(1, opt.clip_tokens));
  std::vector<float> xs;  // the sampled rows, as the reference's input_feat[0::step]
  for (int64_t i = 0; i < n; i += step) xs.insert(xs.end(), x + i * cols, x + (i + 1) * cols);
  const int64_t m = int64_t(xs.size()) / cols;
  std::vector<float> gram(size_t(groups * gs * gs));
  for (int64_t g = 0; g < groups; ++g) {
    float* gg = gram.data() + g * gs * gs;
    matmul_at_strided(xs.data() + g * gs, cols, xs.data() + g * gs, cols, gg, gs, gs, gs, m);
    for (int64_t i = 0; i < gs; ++i)
      for (int64_t j = 0; j < gs; ++j)
        gg[i * gs + j] /= s[size_t(g * gs + i)] * s[size_t(g * gs + j)];
  }
  // Every candidate's error dᵀ·G·d at once, as a GEMM: for a chunk of rows of one group,
  // D holds each row's residual w − ŵ under each shrink ([rows·shrinks, gs]); the errors
  // are the row sums of (D·G) ∘ D. G is symmetric, so D·G = D·Gᵀ (matmul_wt).
  const int64_t shrinks = int64_t((1.0f - opt.clip_min_shrink) / opt.clip_step + 1e-4f) + 1;
  const int64_t chunk = std::max<int64_t>(1, 4096 / shrinks);  // rows per GEMM
  const int64_t chunks = (rows + chunk - 1) / chunk;
  std::vector<AffineParams> params(size_t(rows * groups));
  tbb::parallel_for(int64_t(0), groups * chunks, [&](int64_t task) {
    if (cancel) cancel->throw_if_cancelled();
    const int64_t g = task / chunks, r0 = task % chunks * chunk, r1 = std::min(rows, r0 + chunk);
    const float* gg = gram.data() + g * gs * gs;
    const int64_t m = (r1 - r0) * shrinks;
    std::vector<float> d(size_t(m * gs)), dg(size_t(m * gs));
    std::vector<AffineParams> cand(static_cast<size_t>(m));
    for (int64_t r = r0; r < r1; ++r) {
      const float* w = ws.data() + r * cols + g * gs;
      float lo = 0, hi = 0;
      for (int64_t i = 0; i < gs; ++i) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
      for (int64_t k = 0; k < shrinks; ++k) {
        const int64_t row = (r - r0) * shrinks + k;
        const AffineParams p =
            awq_clip_params(lo, hi, opt.bits, opt.symmetric, 1.0f - float(k) * opt.clip_step);
        cand[size_t(row)] = p;
        float* dr = d.data() + row * gs;
        for (int64_t i = 0; i < gs; ++i) dr[i] = w[i] - affine_round(w[i], p, opt.bits);
      }
    }
    matmul_wt(d.data(), gg, dg.data(), m, gs, gs);
    for (int64_t r = r0; r < r1; ++r) {
      double best_e = INFINITY;
      for (int64_t k = 0; k < shrinks; ++k) {
        const int64_t row = (r - r0) * shrinks + k;
        double e = 0;
        for (int64_t i = 0; i < gs; ++i)
          e += double(d[size_t(row * gs + i)]) * dg[size_t(row * gs + i)];
        if (e < best_e) best_e = e, params[size_t(r * groups + g)] = cand[size_t(row)];
      }
    }
  });
  return encode_affine(ws.data(), rows, cols, gs, opt.bits, opt.symmetric, params, name);
}

}  // namespace

AwqResult quantize_awq(const std::vector<AwqLayer>& layers, const float* x, int64_t n, int64_t cols,
                       const AwqOptions& opt, const CancelToken* cancel,
                       const AwqModuleLoss& module_loss) {
  const std::string first = layers.empty() ? std::string("awq") : layers[0].name;
  if (layers.empty()) throw Error(first, "awq needs at least one layer");
  if (n <= 0 || cols <= 0 || !x)
    throw Error(first, "awq needs calibration activations, got " + std::to_string(n) + "x" +
                           std::to_string(cols));
  if (opt.grid < 1 || opt.grid > 1000) throw Error(first, "awq grid must be 1..1000 points");
  if (opt.clip && (!(opt.clip_min_shrink > 0 && opt.clip_min_shrink <= 1) || !(opt.clip_step > 0) ||
                   (1 - opt.clip_min_shrink) / opt.clip_step > 1000 || opt.clip_tokens < 1))
    throw Error(
        first, "awq clipping needs 0 < clip_min_shrink <= 1 and 0 < clip_step, at most 1000 steps");
  for (const AwqLayer& l : layers) {
    if (!l.w || l.rows <= 0) throw Error(l.name, "awq needs a non-empty weight");
    check_affine_bits(l.name, "awq", opt.bits);
    check_group_size(l.name, "awq", opt.group_size, cols);
  }
  RtnOptions rtn;
  rtn.bits = opt.bits, rtn.symmetric = opt.symmetric, rtn.group_size = opt.group_size;

  std::vector<std::vector<float>> y_ref(module_loss ? 0 : layers.size());
  for (size_t i = 0; i < y_ref.size(); ++i) {
    y_ref[i].resize(size_t(n * layers[i].rows));
    matmul_wt(x, layers[i].w, y_ref[i].data(), n, layers[i].rows, cols);
  }
  AwqResult res;
  res.error = INFINITY;
  for (int k = 0; k < opt.grid; ++k) {
    if (cancel) cancel->throw_if_cancelled();
    const float alpha = float(k) / float(opt.grid);
    std::vector<float> s = awq_scales(x, n, cols, alpha);
    round_scales_to_f16(s);  // what is searched is what is stored (and counted: 16 bits)
    std::vector<std::vector<float>> eff;
    for (const AwqLayer& l : layers) eff.push_back(effective_weight(l, cols, s, rtn));
    double e = 0;
    if (module_loss) {
      std::vector<const float*> ptrs;
      for (const auto& w : eff) ptrs.push_back(w.data());
      e = module_loss(ptrs);
    } else {
      for (size_t i = 0; i < layers.size(); ++i)
        e += output_error(eff[i].data(), layers[i].rows, x, n, cols, y_ref[i]);
    }
    if (k == 0) res.error_rtn = e;
    if (e < res.error) res.error = e, res.alpha = alpha, res.input_scale = std::move(s);
  }
  for (const AwqLayer& l : layers) {
    if (cancel) cancel->throw_if_cancelled();
    const auto ws = scaled_columns(l.w, l.rows, cols, res.input_scale);
    res.layers.push_back(
        opt.clip && l.clip
            ? clipped_layer(ws, l.rows, cols, x, n, res.input_scale, opt, cancel, l.name)
            : quantize_rtn(ws.data(), l.rows, cols, rtn, nullptr, cancel, l.name));
  }
  return res;
}

}  // namespace mcw
