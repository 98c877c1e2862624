// The encoders for Q5_0, Q5_1, Q4_K, Q5_K and Q6_K (engine/core/kquant_encode.cpp) must write
// the bytes ggml's reference encoders write. Checked two ways:
//  * golden hashes: ggml itself encoded the inputs make_inputs() builds, and the SHA-256 of
//    its output per type is recorded below; MCW must reproduce each hash exactly;
//  * properties that hold whatever the reference does: round-trip error bounds, decoded
//    values re-encoding to (nearly) themselves, zero blocks, extreme magnitudes.
//
// How the golden hashes were made: ggml commit d99724f2b141fed9e1a9f402213506c081433465
// (github.com/ggml-org/ggml), src/ggml-quants.c compiled on x86-64 with gcc 12.2.0
// (Debian 12.2.0-14+deb12u1) as ggml-base is built: `gcc -O3 -DNDEBUG -std=gnu11` with no
// -march flag (so no FMA), linked into a small driver that generated the inputs with a C
// version of make_inputs() (same integer generator, same float operations; the input hash
// below pins them), called quantize_row_{q5_0,q5_1,q4_K,q5_K,q6_K}_ref once on all
// 96·256 values and hashed the output bytes. The same driver compared MCW's bytes with
// ggml's block by block on 5 seeds × 4096 super-blocks of all kinds plus NaN/Inf inputs.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"
#include "engine/core/sha256.h"
#include "kquant_test_inputs.h"

using namespace mcw;
using namespace mcw::kquant_test;

namespace {

const DType kTypes[] = {DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Super-block b has kind b % 12: eight of each kind.
std::vector<float> make_inputs(uint64_t seed = 2026, size_t superblocks = 96, int kinds = 12) {
  std::vector<float> x(superblocks * 256);
  InputGen g(seed);
  for (size_t b = 0; b < superblocks; ++b) fill(g, int(b % size_t(kinds)), &x[256 * b]);
  return x;
}

std::vector<uint8_t> encode(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> out(*dtype_bytes(t, int64_t(x.size())));
  from_f32(t, x.data(), out.data(), x.size());
  return out;
}

std::vector<float> decode(DType t, const std::vector<uint8_t>& b, size_t n) {
  std::vector<float> y(n);
  to_f32(t, b.data(), y.data(), n);
  return y;
}

std::vector<float> round_trip(DType t, const std::vector<float>& x) {
  return decode(t, encode(t, x), x.size());
}

std::string sha256_of(const void* p, size_t n) {
  Sha256 h;
  h.update(p, n);
  return to_hex(h.finish());
}

// Relative RMS error of y against x.
double rel_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    e += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    s += double(x[i]) * x[i];
  }
  return std::sqrt(e / s);
}

}  // namespace

TEST(KquantEncode, GoldenInputsAreTheOnesGgmlEncoded) {
  const std::vector<float> x = make_inputs();
  EXPECT_EQ(sha256_of(x.data(), x.size() * 4),
            "a7b0f4e36d7bff4b2bfd5b99797c555e42ddd11e5fbf5ce1c8a35c0d0767c9f6");
}

TEST(KquantEncode, BytesMatchGgmlReferenceEncoders) {
  const std::vector<float> x = make_inputs();
  const std::pair<DType, const char*> golden[] = {
      {DType::Q5_0, "7cb2908177e90d09d759f64bb202b2eea78fe169153cf6039ccda511b32bc484"},
      {DType::Q5_1, "8c733724db6bb34c624b5bfcc8426c8fabd8e8a180d496faf65b44aaf2468545"},
      {DType::Q4_K, "a0917d896e096bd547e9fed528842016562a3cab8c0e19adc24d34342d937511"},
      {DType::Q5_K, "70a16dc47b6738fe81409ab569f72d48813a9856a4179acaed1835f1e70a4553"},
      {DType::Q6_K, "b55e638152721101e04cea052ec2434ef1b7c912adf04974b67d004f357de8fa"},
  };
  for (const auto& [t, want] : golden) {
    const std::vector<uint8_t> b = encode(t, x);
    EXPECT_EQ(sha256_of(b.data(), b.size()), want) << dtype_name(t);
  }
}

TEST(KquantEncode, FromF32CallsTheEncoders) {
  const std::vector<float> x = make_inputs(7, 4, 2);
  std::vector<uint8_t> direct(x.size());  // larger than any of these encodings
  quantize_q6_k(x.data(), reinterpret_cast<BlockQ6_K*>(direct.data()), x.size());
  const std::vector<uint8_t> via = encode(DType::Q6_K, x);
  EXPECT_EQ(0, std::memcmp(via.data(), direct.data(), via.size()));
  quantize_q5_1(x.data(), reinterpret_cast<BlockQ5_1*>(direct.data()), x.size());
  EXPECT_EQ(0, std::memcmp(encode(DType::Q5_1, x).data(), direct.data(), x.size() / 32 * 24));
}

// The legacy types have closed-form error bounds: Q5_0 maps the peak to −16 exactly, so
// any value is within one step d of its code (the opposite extreme clamps at +15); Q5_1
// rounds to the nearest of 32 levels from min to max, within half a step, plus what f16
// rounding of d and m adds across 31 steps.
TEST(KquantEncode, LegacyTypesRoundTripWithinTheirStep) {
  for (int kind : {0, 1, 2, 8, 11}) {
    std::vector<float> x(64 * 256);
    InputGen g(11);
    for (size_t b = 0; b < 64; ++b) fill(g, kind, &x[256 * b]);
    const std::vector<float> y0 = round_trip(DType::Q5_0, x), y1 = round_trip(DType::Q5_1, x);
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float amax = 0, lo = x[32 * b], hi = x[32 * b];
      for (size_t i = 32 * b; i < 32 * b + 32; ++i)
        amax = std::max(amax, std::fabs(x[i])), lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
      if (amax > 60000) continue;  // beyond f16: the stored scale saturates
      for (size_t i = 32 * b; i < 32 * b + 32; ++i) {
        ASSERT_LE(std::fabs(y0[i] - x[i]), amax / 16 * 1.01f) << "Q5_0 value " << i;
        ASSERT_LE(std::fabs(y1[i] - x[i]),
                  (hi - lo) * (0.5f / 31 + 1.0f / 512) + std::fabs(lo) / 1024)
            << "Q5_1 value " << i;
      }
    }
  }
}

// K-quants search their scales, so the bound is statistical: relative RMS error on
// gaussian data near what a uniform quantiser of that many bits gives (the bytes being
// exactly ggml's is the golden test's job; this catches gross breakage with readable output).
TEST(KquantEncode, KQuantsRoundTripErrorOnGaussianData) {
  std::vector<float> x(256 * 256);
  InputGen g(5);
  for (size_t b = 0; b < 256; ++b) fill(g, 1, &x[256 * b]);
  EXPECT_LT(rel_rmse(x, round_trip(DType::Q4_K, x)), 0.08);  // measured 0.069
  EXPECT_LT(rel_rmse(x, round_trip(DType::Q5_K, x)), 0.04);  // 0.035
  EXPECT_LT(rel_rmse(x, round_trip(DType::Q6_K, x)), 0.02);  // 0.017
  EXPECT_LT(rel_rmse(x, round_trip(DType::Q5_0, x)), 0.045);
  EXPECT_LT(rel_rmse(x, round_trip(DType::Q5_1, x)), 0.04);
}

// Values that already lie on a block's grid: the legacy types give them back exactly; the
// K-quants search again and may pick a slightly different grid, but the second pass must
// be far closer to the first than the first was to the data.
TEST(KquantEncode, DecodedValuesReencodeToThemselvesOrNearly) {
  std::vector<float> x(256 * 256);
  InputGen g(9);
  for (size_t b = 0; b < 256; ++b) fill(g, int(b % 2), &x[256 * b]);  // uniform, gaussian
  for (DType t : kTypes) {
    const std::vector<float> y = round_trip(t, x), y2 = round_trip(t, y);
    size_t same = 0;
    for (size_t b = 0; b < 256; ++b) same += std::memcmp(&y[256 * b], &y2[256 * b], 1024) == 0;
    if (t == DType::Q5_0 || t == DType::Q5_1) {
      EXPECT_EQ(same, 256u) << dtype_name(t);
    } else {
      EXPECT_GE(same, 192u) << dtype_name(t);
      EXPECT_LT(rel_rmse(y, y2), 0.25 * rel_rmse(x, y)) << dtype_name(t);
    }
  }
}

TEST(KquantEncode, ZeroBlocksDecodeToZero) {
  const std::vector<float> x(512, 0.0f);
  for (DType t : kTypes) {
    const std::vector<uint8_t> b = encode(t, x);
    for (float v : decode(t, b, x.size())) ASSERT_EQ(v, 0.0f) << dtype_name(t);
    if (t == DType::Q5_0) {
      // d = 0 / −16 = −0 and every code 16 (the zero point): fifth bits set, nibbles clear,
      // as ggml writes it.
      const auto* q = reinterpret_cast<const BlockQ5_0*>(b.data());
      EXPECT_EQ(q->d, 0x8000);
      for (uint8_t h : q->qh) EXPECT_EQ(h, 0xff);
      for (uint8_t n : q->qs) EXPECT_EQ(n, 0);
    } else {
      for (uint8_t v : b) ASSERT_EQ(v, 0) << dtype_name(t);
    }
  }
}

TEST(KquantEncode, ExtremeInputs) {
  for (DType t : kTypes) {
    // Constant blocks come back as the constant, up to f16 rounding of the scales.
    for (float c : {3.0f, -3.0f, 1000.0f, -0.25f}) {
      const std::vector<float> y = round_trip(t, std::vector<float>(256, c));
      for (float v : y) ASSERT_NEAR(v, c, std::fabs(c) * 1e-3f) << dtype_name(t) << " " << c;
    }
    // Subnormal and tiny values: every step underflows f16, so all decode to zero.
    std::vector<float> tiny(256);
    for (int i = 0; i < 256; ++i) tiny[size_t(i)] = pow2(-149 + i % 30) * (i % 3 ? 1.0f : -1.0f);
    for (float v : round_trip(t, tiny)) ASSERT_EQ(v, 0.0f) << dtype_name(t);
    // The largest magnitudes f16 scales can carry, both signs: finite, and within a step
    // of the coarsest (4-bit) grid.
    std::vector<float> big(256);
    for (int i = 0; i < 256; ++i)
      big[size_t(i)] = (i % 2 ? 65000.0f : -60000.0f) * float(i % 5 + 1) / 5;
    const std::vector<float> yb = round_trip(t, big);
    for (size_t i = 0; i < 256; ++i) {
      ASSERT_TRUE(std::isfinite(yb[i])) << dtype_name(t) << " value " << i;
      ASSERT_NEAR(yb[i], big[i], 0.1f * 65000) << dtype_name(t) << " value " << i;
    }
    // Beyond f16 (1e30, random bit patterns of any exponent) the values cannot be stored,
    // but the stored f16 steps are never NaN: they saturate to ±Inf (or, for Q6_K, whose
    // x² weights overflow, the block is dropped to zero), exactly as ggml does.
    std::vector<float> wild(256 * 8);
    InputGen g(77);
    for (size_t b = 0; b < 8; ++b) fill(g, 9, &wild[256 * b]);
    for (size_t i = 0; i < 256; ++i) wild[i] = i % 3 ? 1e30f : -5e29f;
    const std::vector<uint8_t> b = encode(t, wild);
    const int bytes = dtype_info(t).block_bytes;
    for (size_t k = 0; k < b.size() / size_t(bytes); ++k) {
      const uint8_t* blk = &b[k * size_t(bytes)];
      // The f16 fields: d (and m / dmin) lead the block, except Q6_K's d at the end.
      std::vector<uint16_t> halves(t == DType::Q5_0 || t == DType::Q6_K ? 1 : 2);
      std::memcpy(halves.data(), t == DType::Q6_K ? blk + 208 : blk, halves.size() * 2);
      for (uint16_t h : halves)
        ASSERT_FALSE(std::isnan(f16_to_f32(h))) << dtype_name(t) << " block " << k;
    }
    if (t == DType::Q6_K) {  // the 1e30 block
      for (int i = 0; i < bytes; ++i) EXPECT_EQ(b[size_t(i)], 0) << "byte " << i;
    }
  }
}
