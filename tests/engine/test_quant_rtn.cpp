#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "quant_test_util.h"

using namespace mcw;
using namespace quant_test;

namespace {

// The documented grid, written out again: range with 0, f16 scale, half-even rounding.
struct RefGrid {
  float scale, zero;
};
RefGrid ref_grid(float lo, float hi, int bits, bool sym) {
  lo = std::min(lo, 0.0f), hi = std::max(hi, 0.0f);
  const int maxq = (1 << bits) - 1;
  if (sym) {
    float a = std::max(-lo, hi);
    if (a == 0) a = 1;
    return {f16_to_f32(f32_to_f16(a / (float(1 << (bits - 1)) - 0.5f))), float(1 << (bits - 1))};
  }
  if (lo == 0 && hi == 0) lo = -1, hi = 1;
  const float s = f16_to_f32(f32_to_f16((hi - lo) / float(maxq)));
  return {s, std::clamp(std::nearbyint(-lo / s), 0.0f, float(maxq))};
}
float ref_value(float w, RefGrid g, int bits) {
  const float q = std::clamp(std::nearbyint(w / g.scale) + g.zero, 0.0f, float((1 << bits) - 1));
  return g.scale * (q - g.zero);
}

std::vector<float> reference_rtn(const std::vector<float>& w, int64_t rows, int64_t cols, int bits,
                                 bool sym, QuantScope scope, int64_t gs) {
  if (scope != QuantScope::Group) gs = cols;
  std::vector<float> out(w.size());
  float tlo = 0, thi = 0;
  for (float v : w) tlo = std::min(tlo, v), thi = std::max(thi, v);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g0 = 0; g0 < cols; g0 += gs) {
      float lo = 0, hi = 0;
      for (int64_t c = g0; c < g0 + gs; ++c)
        lo = std::min(lo, w[size_t(r * cols + c)]), hi = std::max(hi, w[size_t(r * cols + c)]);
      if (scope == QuantScope::PerTensor) lo = tlo, hi = thi;
      const RefGrid g = ref_grid(lo, hi, bits, sym);
      for (int64_t c = g0; c < g0 + gs; ++c)
        out[size_t(r * cols + c)] = ref_value(w[size_t(r * cols + c)], g, bits);
    }
  return out;
}

}  // namespace

TEST(Rtn, HandWorkedTwoBit) {
  const std::vector<float> w = {-1.0f, 0.0f, 0.5f, 2.0f};
  RtnOptions o;
  o.bits = 2, o.scope = QuantScope::PerChannel;
  CompressedTensor a = quantize_rtn(w.data(), 1, 4, o);
  // lo = −1, hi = 2: scale = 3/3 = 1, zero = 1; 0.5 rounds half to even (0).
  EXPECT_EQ(codes_of(a), (std::vector<uint8_t>{0, 1, 1, 3}));
  EXPECT_EQ(a.scales, std::vector<float>{1.0f});
  EXPECT_EQ(a.zeros, std::vector<float>{1.0f});
  EXPECT_EQ(a.dequantize().to_f32(), (std::vector<float>{-1, 0, 0, 2}));
  EXPECT_EQ(a.describe(), "int2 per-channel asym");
  o.symmetric = true;  // scale = 2/1.5 rounded to f16, zero 2; 2/scale = 1.5 → 2 → clamped to 3
  CompressedTensor s = quantize_rtn(w.data(), 1, 4, o);
  EXPECT_EQ(s.scales[0], f16_to_f32(f32_to_f16(4.0f / 3.0f)));
  EXPECT_TRUE(s.zeros.empty());
  EXPECT_EQ(codes_of(s), (std::vector<uint8_t>{1, 2, 2, 3}));
}

TEST(Rtn, MatchesReferenceEveryBitsScopeAndGroup) {
  const int64_t rows = 6, cols = 256;
  const auto w = gaussian(size_t(rows * cols), 7, 0.05f);
  for (int bits : {2, 3, 4, 8})
    for (bool sym : {false, true})
      for (auto [scope, gs] :
           {std::pair{QuantScope::PerTensor, int64_t(0)},
            std::pair{QuantScope::PerChannel, int64_t(0)},
            std::pair{QuantScope::Group, int64_t(32)}, std::pair{QuantScope::Group, int64_t(64)},
            std::pair{QuantScope::Group, int64_t(128)}}) {
        RtnOptions o;
        o.bits = bits, o.symmetric = sym, o.scope = scope, o.group_size = gs;
        const CompressedTensor c = quantize_rtn(w.data(), rows, cols, o);
        const auto got = c.dequantize().to_f32();
        const auto want = reference_rtn(w, rows, cols, bits, sym, scope, gs);
        ASSERT_EQ(got, want) << bits << " " << sym << " " << int(scope) << " " << gs;
        // Every weight within half a step of its grid (the range always covers it), up to
        // the f16 rounding of the scale, which can move the far end by maxq·2⁻¹¹ steps.
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t col = 0; col < cols; ++col) {
            const float step = c.scales[size_t(r * c.groups() + c.group_of(col))];
            ASSERT_LE(std::fabs(got[size_t(r * cols + col)] - w[size_t(r * cols + col)]),
                      step * (0.5f + float((1 << bits) - 1) / 2048.0f) * 1.0001f);
          }
        const int64_t groups = scope == QuantScope::Group ? cols / gs : 1;
        EXPECT_EQ(c.storage_bits(),
                  uint64_t(rows * cols * bits + rows * groups * (16 + (sym ? 0 : bits))));
        if (scope == QuantScope::PerTensor) {
          for (float s : c.scales) EXPECT_EQ(s, c.scales[0]);
        }
      }
}

TEST(Rtn, ClipSearchNeverWorseAndHelpsHeavyTails) {
  const int64_t rows = 16, cols = 128;
  const auto w = laplace(size_t(rows * cols), 3, 0.02f);
  std::vector<double> hd(static_cast<size_t>(cols));
  std::mt19937 rng(5);
  for (auto& v : hd) v = std::exp(std::normal_distribution<double>(0, 1.5)(rng));
  for (int bits : {2, 3, 4})
    for (bool sym : {false, true}) {
      RtnOptions o;
      o.bits = bits, o.symmetric = sym, o.group_size = 64;
      const auto plain = quantize_rtn(w.data(), rows, cols, o).dequantize().to_f32();
      o.clip.enabled = true;
      const auto clipped = quantize_rtn(w.data(), rows, cols, o).dequantize().to_f32();
      const auto weighted = quantize_rtn(w.data(), rows, cols, o, hd.data()).dequantize().to_f32();
      const double e_plain = weighted_sq_error(w.data(), plain.data(), rows, cols, nullptr);
      const double e_clip = weighted_sq_error(w.data(), clipped.data(), rows, cols, nullptr);
      EXPECT_LT(e_clip, e_plain * 0.95) << bits << sym;  // heavy tails: clipping pays
      // The weighted search minimises the weighted error over the same candidates.
      EXPECT_LE(weighted_sq_error(w.data(), weighted.data(), rows, cols, hd.data()),
                weighted_sq_error(w.data(), clipped.data(), rows, cols, hd.data()) * (1 + 1e-12));
      EXPECT_LE(weighted_sq_error(w.data(), weighted.data(), rows, cols, hd.data()),
                weighted_sq_error(w.data(), plain.data(), rows, cols, hd.data()) * (1 + 1e-12));
    }
}

TEST(Rtn, ZeroWeightsStayZero) {
  std::vector<float> w(64, 0.0f);
  w[5] = 0.3f, w[40] = -0.7f;
  for (bool sym : {false, true}) {
    RtnOptions o;
    o.bits = 3, o.symmetric = sym, o.group_size = 32;
    const auto d = quantize_rtn(w.data(), 2, 32, o).dequantize().to_f32();
    for (size_t i = 0; i < w.size(); ++i)
      if (w[i] == 0.0f) {
        EXPECT_EQ(d[i], 0.0f) << i;
      }
  }
}

TEST(Rtn, BadParametersAreClearErrors) {
  const auto w = gaussian(4 * 96, 1);
  RtnOptions o;
  o.bits = 5;
  try {
    quantize_rtn(w.data(), 4, 96, o, nullptr, nullptr, "blk.0.w");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.w"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("bits must be one of 2, 3, 4, 8 for rtn"),
              std::string::npos);
  }
  o.bits = 4, o.group_size = 64;  // 96 is not a multiple of 64
  EXPECT_THROW(quantize_rtn(w.data(), 4, 96, o), Error);
  o.group_size = 0;
  EXPECT_THROW(quantize_rtn(w.data(), 4, 96, o), Error);
  o.group_size = 32, o.clip.enabled = true, o.clip.min_shrink = 0;
  EXPECT_THROW(quantize_rtn(w.data(), 4, 96, o), Error);
}

TEST(Rtn, Cancels) {
  const auto w = gaussian(64 * 64, 1);
  CancelToken t;
  t.cancel();
  RtnOptions o;
  o.group_size = 32;
  EXPECT_THROW(quantize_rtn(w.data(), 64, 64, o, nullptr, &t), Cancelled);
}
