#include <gtest/gtest.h>

#include <cmath>

#include "engine/compress/awq.h"
#include "engine/compress/awq_gptq.h"
#include "engine/compress/gptq.h"
#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "quant_test_util.h"

using namespace mcw;
using namespace quant_test;

namespace {
constexpr int64_t kRows = 32, kCols = 64, kN = 128;
}

TEST(Awq, AlphaZeroIsRtn) {
  const auto x = correlated_inputs(kN, kCols, 5, 3);
  const auto w = gaussian(size_t(kRows * kCols), 6, 0.05f);
  const auto s = awq_scales(x.data(), kN, kCols, 0.0f);
  for (float v : s) ASSERT_EQ(v, 1.0f);
  AwqOptions o;
  o.bits = 3, o.group_size = 32, o.grid = 1;  // α = 0 only
  const AwqResult a = quantize_awq({{w.data(), kRows, "l"}}, x.data(), kN, kCols, o);
  RtnOptions r;
  r.bits = 3, r.group_size = 32;
  const CompressedTensor rt = quantize_rtn(w.data(), kRows, kCols, r);
  EXPECT_EQ(a.alpha, 0.0f);
  EXPECT_EQ(a.layers[0].codes, rt.codes);
  EXPECT_EQ(a.layers[0].scales, rt.scales);
  EXPECT_EQ(a.error, a.error_rtn);
}

TEST(Awq, BeatsRtnWithOutlierChannels) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto x = correlated_inputs(kN, kCols, seed, 4, 30.0f);
    const auto w1 = gaussian(size_t(kRows * kCols), seed + 10, 0.05f);
    const auto w2 = gaussian(size_t(16 * kCols), seed + 20, 0.05f);
    AwqOptions o;
    o.bits = 3, o.group_size = 32;
    const AwqResult a =
        quantize_awq({{w1.data(), kRows, "q"}, {w2.data(), 16, "k"}}, x.data(), kN, kCols, o);
    ASSERT_EQ(a.layers.size(), 2u);
    ASSERT_EQ(a.input_scale.size(), size_t(kCols));
    EXPECT_GT(a.alpha, 0.0f);
    RtnOptions r;
    r.bits = 3, r.group_size = 32;
    const auto rq = quantize_rtn(w1.data(), kRows, kCols, r).dequantize().to_f32();
    const auto aq = awq_effective_weight(a.layers[0], a.input_scale).to_f32();
    const double e_rtn = activation_error(x, kN, kCols, w1.data(), rq.data(), kRows);
    const double e_awq = activation_error(x, kN, kCols, w1.data(), aq.data(), kRows);
    EXPECT_LT(e_awq, 0.9 * e_rtn) << seed;
    // The reported errors are the same quantities over both layers.
    const auto rq2 = quantize_rtn(w2.data(), 16, kCols, r).dequantize().to_f32();
    const auto aq2 = awq_effective_weight(a.layers[1], a.input_scale).to_f32();
    EXPECT_NEAR(a.error_rtn, e_rtn + activation_error(x, kN, kCols, w2.data(), rq2.data(), 16),
                1e-3 * a.error_rtn);
    EXPECT_NEAR(a.error, e_awq + activation_error(x, kN, kCols, w2.data(), aq2.data(), 16),
                1e-3 * a.error);
    EXPECT_LE(a.error, a.error_rtn);
  }
}

TEST(Awq, ThenGptqWithUnitScaleIsGptq) {
  const auto x = correlated_inputs(kN, kCols, 6, 2);
  const auto w = gaussian(size_t(kRows * kCols), 7, 0.05f);
  GptqOptions g;
  g.bits = 3, g.group_size = 32, g.act_order = g.static_groups = true;
  const LayerStats st = stats_of(x, kN, kCols);
  const auto a = quantize_awq_gptq({{w.data(), kRows, "l"}}, st, std::vector<float>(kCols, 1.0f), g);
  const CompressedTensor q = quantize_gptq(w.data(), kRows, kCols, st, g);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].codes, q.codes);
  EXPECT_EQ(a[0].scales, q.scales);
  EXPECT_EQ(a[0].zeros, q.zeros);
}

TEST(Awq, ThenGptqLosesLessThanThenRtn) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto x = correlated_inputs(kN, kCols, seed, 4, 30.0f);
    const auto w = gaussian(size_t(kRows * kCols), seed + 30, 0.05f);
    AwqOptions o;
    o.bits = 3, o.group_size = 32;
    const AwqResult a = quantize_awq({{w.data(), kRows, "l"}}, x.data(), kN, kCols, o);
    GptqOptions g;
    g.bits = 3, g.group_size = 32, g.act_order = g.static_groups = true;
    const auto ag = quantize_awq_gptq({{w.data(), kRows, "l"}}, stats_of(x, kN, kCols),
                                      a.input_scale, g);
    const auto rtn = awq_effective_weight(a.layers[0], a.input_scale).to_f32();
    const auto gptq = awq_effective_weight(ag[0], a.input_scale).to_f32();
    EXPECT_LT(activation_error(x, kN, kCols, w.data(), gptq.data(), kRows),
              activation_error(x, kN, kCols, w.data(), rtn.data(), kRows))
        << seed;
  }
}

TEST(Awq, ClippingLowersOutputError) {
  const auto x = correlated_inputs(kN, kCols, 9, 2);
  const auto w = laplace(size_t(kRows * kCols), 10, 0.03f);
  AwqOptions o;
  o.bits = 3, o.group_size = 32;
  const AwqResult plain = quantize_awq({{w.data(), kRows, "l"}}, x.data(), kN, kCols, o);
  o.clip = true;
  const AwqResult clipped = quantize_awq({{w.data(), kRows, "l"}}, x.data(), kN, kCols, o);
  const auto p = awq_effective_weight(plain.layers[0], plain.input_scale).to_f32();
  const auto c = awq_effective_weight(clipped.layers[0], clipped.input_scale).to_f32();
  EXPECT_LT(activation_error(x, kN, kCols, w.data(), c.data(), kRows),
            activation_error(x, kN, kCols, w.data(), p.data(), kRows));
}

TEST(Awq, ScaledStatisticsAndIdentity) {
  const int64_t n = 20, cols = 8;
  auto x = correlated_inputs(n, cols, 4, 1);
  const auto s = awq_scales(x.data(), n, cols, 0.5f);
  const LayerStats st = scale_layer_stats(stats_of(x, n, cols), s);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < cols; ++c) x[size_t(r * cols + c)] /= s[size_t(c)];
  const LayerStats want = stats_of(x, n, cols);
  for (size_t i = 0; i < st.xtx.size(); ++i)
    EXPECT_NEAR(st.xtx[i], want.xtx[i], 1e-4 * (1 + std::fabs(want.xtx[i])));
  for (size_t i = 0; i < size_t(cols); ++i)
    EXPECT_NEAR(st.max_abs[i], want.max_abs[i], 1e-5f * want.max_abs[i]);
  // s normalised so that max·min = 1.
  const auto [mn, mx] = std::minmax_element(s.begin(), s.end());
  EXPECT_NEAR(double(*mn) * *mx, 1.0, 1e-5);
}

TEST(Awq, BadParametersAreClearErrors) {
  const auto x = correlated_inputs(16, 32, 1);
  const auto w = gaussian(4 * 32, 2);
  AwqOptions o;
  o.bits = 5, o.group_size = 32;
  EXPECT_THROW(quantize_awq({{w.data(), 4, "l"}}, x.data(), 16, 32, o), Error);
  o.bits = 4, o.group_size = 24;
  EXPECT_THROW(quantize_awq({{w.data(), 4, "l"}}, x.data(), 16, 32, o), Error);
  o.group_size = 32, o.grid = 0;
  EXPECT_THROW(quantize_awq({{w.data(), 4, "l"}}, x.data(), 16, 32, o), Error);
  o.grid = 20;
  EXPECT_THROW(quantize_awq({}, x.data(), 16, 32, o), Error);
  CancelToken t;
  t.cancel();
  EXPECT_THROW(quantize_awq({{w.data(), 4, "l"}}, x.data(), 16, 32, o, &t), Cancelled);
}

TEST(Awq, ScalesAreF16AndEffectiveWeightIsTheSelfDescribingTensor) {
  const auto x = correlated_inputs(kN, kCols, 8, 4, 30.0f);
  const auto w = gaussian(size_t(kRows * kCols), 9, 0.05f);
  AwqOptions o;
  o.bits = 4, o.group_size = 32;
  const AwqResult a = quantize_awq({{w.data(), kRows, "l"}}, x.data(), kN, kCols, o);
  ASSERT_GT(a.alpha, 0.0f);
  for (float s : a.input_scale) EXPECT_EQ(f16_to_f32(f32_to_f16(s)), s);
  EXPECT_TRUE(a.layers[0].input_scale.empty());  // the caller decides where s goes
  CompressedTensor t = a.layers[0];
  t.input_scale = a.input_scale;
  EXPECT_EQ(awq_effective_weight(a.layers[0], a.input_scale).to_f32(), t.dequantize().to_f32());
  EXPECT_THROW(awq_effective_weight(t, a.input_scale), Error);  // would divide twice

  std::vector<float> s = {1.0f + 1e-4f, 1e-6f, 1e6f, 3.0f};
  round_scales_to_f16(s);
  EXPECT_EQ(s[0], f16_to_f32(f32_to_f16(1.0f + 1e-4f)));
  EXPECT_EQ(s[1], 1e-6f);  // below the normal f16 range: kept
  EXPECT_EQ(s[2], 1e6f);   // beyond it: kept
  EXPECT_EQ(s[3], 3.0f);
}

namespace {

// The paper's search written out: for α = k/20, k = 0..19 (the reference's n_grid = 20,
// ratio = k / n_grid), s = mean|x|^α / √(max · min) (f16 as stored), the weights W·s
// rounded to the g-column grid and divided by s again; the loss is the module's output
// error, here y = (X·Ŵᵀ)·Mᵀ for a fixed M (a stand-in for "the layers after").
float naive_best_alpha(const std::vector<float>& x, int64_t n, int64_t cols, const std::vector<float>& w,
                       int64_t rows, const std::vector<float>& m, int64_t mrows, int bits, int64_t gs) {
  auto module = [&](const std::vector<double>& wq) {
    std::vector<double> y(size_t(n * mrows), 0.0);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        double z = 0;
        for (int64_t c = 0; c < cols; ++c) z += double(x[size_t(t * cols + c)]) * wq[size_t(r * cols + c)];
        for (int64_t o = 0; o < mrows; ++o) y[size_t(t * mrows + o)] += double(m[size_t(o * rows + r)]) * z;
      }
    return y;
  };
  const auto ref = module(std::vector<double>(w.begin(), w.end()));
  double best = INFINITY;
  float best_alpha = -1;
  for (int k = 0; k < 20; ++k) {
    const double alpha = k / 20.0;
    std::vector<double> mean(size_t(cols), 0.0);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < cols; ++c) mean[size_t(c)] += std::fabs(x[size_t(t * cols + c)]) / double(n);
    std::vector<float> s(static_cast<size_t>(cols));
    float lo = INFINITY, hi = 0;
    for (int64_t c = 0; c < cols; ++c) {
      s[size_t(c)] = std::max(float(std::pow(mean[size_t(c)], alpha)), 1e-4f);
      lo = std::min(lo, s[size_t(c)]), hi = std::max(hi, s[size_t(c)]);
    }
    for (float& v : s) v = f16_to_f32(f32_to_f16(v / std::sqrt(lo * hi)));
    std::vector<double> wq(w.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < cols / gs; ++g) {
        std::vector<float> grp(static_cast<size_t>(gs));
        for (int64_t i = 0; i < gs; ++i) grp[size_t(i)] = w[size_t(r * cols + g * gs + i)] * s[size_t(g * gs + i)];
        const AffineParams p = affine_params(grp.data(), gs, 1, bits, false);
        for (int64_t i = 0; i < gs; ++i)
          wq[size_t(r * cols + g * gs + i)] = double(affine_round(grp[size_t(i)], p, bits)) / s[size_t(g * gs + i)];
      }
    const auto y = module(wq);
    double e = 0;
    for (size_t i = 0; i < y.size(); ++i) e += (y[i] - ref[i]) * (y[i] - ref[i]);
    if (e < best) best = e, best_alpha = float(k) / 20.0f;
  }
  return best_alpha;
}

}  // namespace

TEST(Awq, SearchMinimisesTheModuleLossOverTheReferenceGrid) {
  int differs = 0;
  for (uint32_t seed : {1u, 2u, 3u, 4u}) {
    const auto x = correlated_inputs(kN, kCols, seed, 3, 25.0f);
    const auto w = gaussian(size_t(kRows * kCols), seed + 30, 0.05f);
    const auto m = gaussian(size_t(8 * kRows), seed + 40);  // the module after the layer
    AwqOptions o;
    o.bits = 3, o.group_size = 32;
    AwqModuleLoss loss = [&](const std::vector<const float*>& eff) {
      double e = 0;
      for (int64_t t = 0; t < kN; ++t)
        for (int64_t out = 0; out < 8; ++out) {
          double a = 0, b = 0;
          for (int64_t r = 0; r < kRows; ++r) {
            double za = 0, zb = 0;
            for (int64_t c = 0; c < kCols; ++c)
              za += double(x[size_t(t * kCols + c)]) * w[size_t(r * kCols + c)],
                  zb += double(x[size_t(t * kCols + c)]) * eff[0][r * kCols + c];
            a += m[size_t(out * kRows + r)] * za, b += m[size_t(out * kRows + r)] * zb;
          }
          e += (a - b) * (a - b);
        }
      return e;
    };
    const AwqResult a = quantize_awq({{w.data(), kRows, "l"}}, x.data(), kN, kCols, o, nullptr, loss);
    EXPECT_FLOAT_EQ(a.alpha, naive_best_alpha(x, kN, kCols, w, kRows, m, 8, 3, 32)) << seed;
    EXPECT_LE(a.alpha, 0.95f);
    const AwqResult own = quantize_awq({{w.data(), kRows, "l"}}, x.data(), kN, kCols, o);
    differs += own.alpha != a.alpha;
  }
  EXPECT_GT(differs, 0);  // the module's loss is not the layer's own
}

// auto_clip_layer: per row and group, w clamped to ±max|w|·(1 − i/20), i = 0..9, then the
// min-max grid of the clamped group; the shrink with the least mean squared group output
// over every (n / 512)-th token wins (the first on ties).
TEST(Awq, ClipSearchIsTheReferenceClampOnSampledTokens) {
  const int64_t n = 1100, gs = 32;
  const auto x = correlated_inputs(n, kCols, 12, 2);
  const auto w = laplace(size_t(kRows * kCols), 13, 0.03f);
  AwqOptions o;
  o.bits = 3, o.group_size = gs, o.grid = 1, o.clip = true;  // α = 0: s = 1
  const AwqResult a = quantize_awq({{w.data(), kRows, "l"}}, x.data(), n, kCols, o);
  const auto got = a.layers[0].dequantize().to_f32();
  const int64_t step = n / 512;
  int clipped = 0, worse_if_proportional = 0;
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t g = 0; g < kCols / gs; ++g) {
      const float* wg = w.data() + r * kCols + g * gs;
      double best = INFINITY;
      std::vector<float> want;
      for (int i = 0; i < 10; ++i) {
        float amax = 0;
        for (int64_t j = 0; j < gs; ++j) amax = std::max(amax, std::fabs(wg[j]));
        const float mv = amax * (1.0f - float(i) / 20.0f);
        std::vector<float> cl(static_cast<size_t>(gs));
        for (int64_t j = 0; j < gs; ++j) cl[size_t(j)] = std::clamp(wg[j], -mv, mv);
        const AffineParams p = affine_params(cl.data(), gs, 1, 3, false);
        std::vector<float> q(static_cast<size_t>(gs));
        for (int64_t j = 0; j < gs; ++j) q[size_t(j)] = affine_round(wg[j], p, 3);
        double e = 0;
        for (int64_t t = 0; t < n; t += step) {
          double d = 0;
          for (int64_t j = 0; j < gs; ++j) d += double(x[size_t(t * kCols + g * gs + j)]) * (wg[j] - q[size_t(j)]);
          e += d * d;
        }
        if (e < best) best = e, want = q, clipped += i > 0;
      }
      for (int64_t j = 0; j < gs; ++j) EXPECT_EQ(got[size_t(r * kCols + g * gs + j)], want[size_t(j)]) << r << " " << g;
      float lo = 0, hi = 0;
      for (int64_t j = 0; j < gs; ++j) lo = std::min(lo, wg[j]), hi = std::max(hi, wg[j]);
      const AffineParams prop = affine_params_range(lo, hi, 3, false, 0.7f);
      const AffineParams clamp = awq_clip_params(lo, hi, 3, false, 0.7f);
      worse_if_proportional += prop.scale != clamp.scale || prop.zero != clamp.zero;
    }
  EXPECT_GT(clipped, 0);
  EXPECT_GT(worse_if_proportional, 0);  // the two readings of "clip" differ on these groups
  // q and k are not clipped: a layer with clip = false is the unclipped grid.
  AwqLayer q{w.data(), kRows, "q", false};
  const AwqResult a2 = quantize_awq({q}, x.data(), n, kCols, o);
  RtnOptions r;
  r.bits = 3, r.group_size = gs;
  EXPECT_EQ(a2.layers[0].codes, quantize_rtn(w.data(), kRows, kCols, r).codes);
}
