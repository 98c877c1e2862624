#include <gtest/gtest.h>

#include <cmath>

#include "engine/compress/smoothquant.h"
#include "engine/core/half.h"
#include "engine/core/error.h"
#include "quant_test_util.h"

using namespace mcw;
using namespace quant_test;

TEST(SmoothQuant, ScalesClosedFormAndIdentity) {
  const std::vector<float> s = smoothquant_scales({4.0f, 9.0f, 0.0f}, {1.0f, 4.0f, 2.0f}, 0.5f);
  EXPECT_FLOAT_EQ(s[0], 2.0f);  // √4 / √1
  EXPECT_FLOAT_EQ(s[1], 1.5f);  // √9 / √4
  EXPECT_EQ(s[2], 1.0f);        // silent channel: nothing to move
  const std::vector<float> s1 = smoothquant_scales({4.0f}, {2.0f}, 1.0f);
  EXPECT_FLOAT_EQ(s1[0], 4.0f);
  const int64_t n = 16, rows = 12, cols = 24;
  auto x = correlated_inputs(n, cols, 3, 2);
  auto w = gaussian(size_t(rows * cols), 4, 0.1f);
  const auto x0 = x, w0 = w;
  const LayerStats st = stats_of(x, n, cols);
  const auto sc = smoothquant_scales(st.max_abs, column_max_abs(w.data(), rows, cols), 0.5f);
  smooth_weight(w.data(), rows, cols, sc);
  smooth_activations(x.data(), n, cols, sc);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      double a = 0, b = 0;
      for (int64_t c = 0; c < cols; ++c) {
        a += double(x0[size_t(i * cols + c)]) * w0[size_t(r * cols + c)];
        b += double(x[size_t(i * cols + c)]) * w[size_t(r * cols + c)];
      }
      EXPECT_NEAR(a, b, 1e-4 * (1 + std::fabs(a)));
    }
  // After smoothing with α = 0.5 each channel's activation and weight maxima are equal.
  const LayerStats st2 = stats_of(x, n, cols);
  const auto wm = column_max_abs(w.data(), rows, cols);
  for (int64_t c = 0; c < cols; ++c)
    EXPECT_NEAR(st2.max_abs[size_t(c)], wm[size_t(c)], 1e-4f * wm[size_t(c)]);
}

TEST(SmoothQuant, PerTokenInt8) {
  const std::vector<float> x = {1.27f, -0.5f, 0.0f, 0.01f, 0, 0, 0, 0};
  const Int8Rows q = quantize_rows_int8(x.data(), 2, 4);
  EXPECT_FLOAT_EQ(q.scale[0], 0.01f);
  EXPECT_EQ(q.q[0], 127);
  EXPECT_EQ(q.q[1], -50);
  EXPECT_EQ(q.q[3], 1);
  EXPECT_EQ(q.scale[1], 1.0f);  // all-zero token
  auto y = gaussian(64 * 32, 9);
  const auto y0 = y;
  fake_quantize_rows_int8(y.data(), 64, 32);
  for (int64_t r = 0; r < 64; ++r) {
    float m = 0;
    for (int64_t c = 0; c < 32; ++c) m = std::max(m, std::fabs(y0[size_t(r * 32 + c)]));
    for (int64_t c = 0; c < 32; ++c)
      EXPECT_LE(std::fabs(y[size_t(r * 32 + c)] - y0[size_t(r * 32 + c)]),
                0.5f * m / 127.0f * 1.001f);
  }
}

TEST(SmoothQuant, W8A8ErrorLowerWithSmoothing) {
  const int64_t n = 64, rows = 32, cols = 64;
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto x = correlated_inputs(n, cols, seed, 4, 50.0f);
    const auto w = gaussian(size_t(rows * cols), seed + 7, 0.05f);
    auto w8a8_error = [&](float alpha) {
      auto xs = x;
      auto ws = w;
      if (alpha >= 0) {
        const LayerStats st = stats_of(x, n, cols);
        const auto s = smoothquant_scales(st.max_abs, column_max_abs(w.data(), rows, cols), alpha);
        smooth_weight(ws.data(), rows, cols, s);
        smooth_activations(xs.data(), n, cols, s);
      }
      const CompressedTensor wq = quantize_weight_w8(ws.data(), rows, cols);
      EXPECT_EQ(wq.describe(), "int8 per-channel sym");
      const auto wd = wq.dequantize().to_f32();
      fake_quantize_rows_int8(xs.data(), n, cols);
      double e = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t r = 0; r < rows; ++r) {
          double a = 0, b = 0;
          for (int64_t c = 0; c < cols; ++c) {
            a += double(x[size_t(i * cols + c)]) * w[size_t(r * cols + c)];
            b += double(xs[size_t(i * cols + c)]) * wd[size_t(r * cols + c)];
          }
          e += (a - b) * (a - b);
        }
      return e;
    };
    EXPECT_LT(w8a8_error(0.5f), 0.7 * w8a8_error(-1.0f)) << seed;
  }
}

// The reference's quantize_weight_per_channel_absmax: scale = max|w_row| / 127 (an fp16
// tensor), w ≈ round(w / scale) · scale, so the integers stay within ±127.
TEST(SmoothQuant, WeightGridIsPerChannelAbsmaxOver127) {
  const int64_t rows = 9, cols = 40;
  auto w = gaussian(size_t(rows * cols), 5, 0.2f);
  for (int64_t c = 0; c < cols; ++c) w[size_t(3 * cols + c)] = 0;  // an all-zero row
  w[size_t(4 * cols + 7)] = -3.0f;                                   // a negative maximum
  const CompressedTensor q = quantize_weight_w8(w.data(), rows, cols);
  const auto got = q.dequantize().to_f32();
  std::vector<uint8_t> codes(size_t(rows * cols));
  unpack_codes(q.codes.data(), codes.size(), 8, codes.data());
  for (int64_t r = 0; r < rows; ++r) {
    double amax = 0;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, double(std::fabs(w[size_t(r * cols + c)])));
    const float scale = f16_to_f32(f32_to_f16(float(std::max(amax, 1e-5) / 127.0)));
    EXPECT_EQ(q.scales[size_t(r)], scale) << r;
    int reach = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = w[size_t(r * cols + c)];
      const float want = std::nearbyint(v / scale) * scale;
      EXPECT_EQ(got[size_t(r * cols + c)], want) << r << " " << c;
      const int i = int(codes[size_t(r * cols + c)]) - 128;
      EXPECT_GE(i, -127);
      reach = std::max(reach, std::abs(i));
    }
    EXPECT_EQ(reach, r == 3 ? 0 : 127) << r;
  }
}

TEST(SmoothQuant, BadParameters) {
  EXPECT_THROW(smoothquant_scales({1, 2}, {1}, 0.5f), Error);
  EXPECT_THROW(smoothquant_scales({1}, {1}, 1.5f), Error);
}
