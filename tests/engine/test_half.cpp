// f16/bf16 conversions checked over every 16-bit pattern against independent references:
// the compiler's own _Float16 arithmetic for f16, exact distance comparison for bf16.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

#include "engine/core/half.h"

using namespace mcw;

static bool is_nan16(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

TEST(Half, F16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
    if (is_nan16(uint16_t(h))) {
      ASSERT_TRUE(std::isnan(f));
    }
  }
}

TEST(Half, F16WideningMatchesCompiler) {
  for (uint32_t h = 0; h < 65536; ++h) {
    if (is_nan16(uint16_t(h))) continue;
    const _Float16 ref = std::bit_cast<_Float16>(uint16_t(h));
    ASSERT_EQ(std::bit_cast<uint32_t>(f16_to_f32(uint16_t(h))),
              std::bit_cast<uint32_t>(float(ref))) << std::hex << h;
  }
}

// Every f16 value, the midpoints between neighbours (ties), and one f32 ulp either side
// of each midpoint, rounded by our code and by the compiler.
TEST(Half, F16NarrowingMatchesCompilerAtEveryTie) {
  auto check = [](float f) {
    const uint16_t ours = f32_to_f16(f);
    const uint16_t ref = std::bit_cast<uint16_t>(_Float16(f));
    ASSERT_EQ(ours, ref) << "f=" << f << " bits=" << std::hex << std::bit_cast<uint32_t>(f);
  };
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    for (uint32_t sign : {0u, 0x8000u}) {
      const double a = f16_to_f32(uint16_t(h | sign)), b = f16_to_f32(uint16_t((h + 1) | sign));
      const float mid = float((a + b) / 2);  // exact: f16 midpoints fit in f32
      check(float(a));
      check(mid);
      check(std::nextafter(mid, 0.0f));
      check(std::nextafter(mid, INFINITY));
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 1000000; ++i) {
    const float f = std::bit_cast<float>(uint32_t(rng()));
    if (!std::isnan(f)) check(f);
  }
}

TEST(Half, F16SpecialValues) {
  EXPECT_EQ(f32_to_f16(INFINITY), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // the tie rounds to even, which is Inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even: zero
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_TRUE(is_nan16(f32_to_f16(std::nanf(""))));
  // A NaN whose payload lives only in the low bits must not turn into Inf.
  EXPECT_TRUE(is_nan16(f32_to_f16(std::bit_cast<float>(0x7f800001u))));
}

TEST(Half, Bf16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(uint16_t(h));
    ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
  }
}

// Reference: pick the nearer of the two bf16 neighbours by exact double arithmetic.
static uint16_t bf16_reference(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t lo = uint16_t(x >> 16);
  const uint16_t hi = uint16_t(lo + 1);
  const double dl = std::fabs(double(f) - double(bf16_to_f32(lo)));
  const double vh = double(bf16_to_f32(hi));
  const double dh = std::isinf(vh) ? std::ldexp(1.0, 128) - std::fabs(double(f)) : std::fabs(vh - double(f));
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}

TEST(Half, Bf16NarrowingMatchesReference) {
  std::mt19937 rng(11);
  for (int i = 0; i < 2000000; ++i) {
    uint32_t x = uint32_t(rng());
    if (i % 4 == 0) x = (x & 0xffff0000u) | 0x8000u;  // exact ties
    const float f = std::bit_cast<float>(x);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_bf16(f), bf16_reference(f)) << std::hex << x;
  }
  EXPECT_EQ(f32_to_bf16(3.4028235e38f), 0x7f80);  // FLT_MAX rounds up to Inf
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
}
