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
