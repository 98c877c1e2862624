// The block-weight small-m product on int8 activations (block_gemv.h), for every ggml block
// type at every SIMD level, against sums in f64 over the weights as engine/core's decoders
// give them (each checked against ggml in test_kquant_blocks.cpp):
//  - with the activations as quantize_activations rounds them, the product equals the f64
//    sum up to f32 rounding: this pins the unpacking of every type, bit by bit;
//  - against the exact f32 activations, the error stays within Σ|w|·dx/2, the bound the
//    rounding of x allows.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <cstring>
#include <random>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"
#include "engine/kernels/block_gemv.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/stored_matmul.h"
#include "quant_test_util.h"

using namespace mcw;
using quant_test::gaussian;

namespace {

constexpr DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1,   DType::Q5_0,  DType::Q5_1,
                            DType::Q2_K, DType::Q3_K, DType::Q4_K,   DType::Q5_K,  DType::Q6_K,
                            DType::IQ4_NL, DType::IQ4_XS};

// Byte offsets of each type's f16 fields (scale d, and min or dmin where it has one).
std::vector<size_t> f16_fields(DType t) {
  switch (t) {
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: return {0, 2};
    case DType::Q2_K: return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)};
    case DType::Q3_K: return {offsetof(BlockQ3_K, d)};
    case DType::Q6_K: return {offsetof(BlockQ6_K, d)};
    default: return {0};
  }
}

// Random codes and scales, with f16 fields set to small finite values of either sign.
std::vector<uint8_t> random_rows(DType t, int64_t n, int64_t k, uint32_t seed) {
  const auto info = dtype_info(t);
  std::vector<uint8_t> raw(size_t(n * k / info.block * info.block_bytes));
  std::mt19937 rng(seed);
  for (auto& b : raw) b = uint8_t(rng());
  std::uniform_real_distribution<float> mag(0.0005f, 0.01f);
  for (size_t off = 0; off < raw.size(); off += size_t(info.block_bytes))
    for (size_t field : f16_fields(t)) {
      const uint16_t h = f32_to_f16((rng() & 1 ? -1.0f : 1.0f) * mag(rng));
      std::memcpy(&raw[off + field], &h, 2);
    }
  return raw;
}

struct Restore {
  ~Restore() { set_simd_level(SimdLevel::Avx512); }
};

}  // namespace

// The AVX-512 rounding of x gives the scalar loop's bytes: ties away from zero (x = k + ½
// after scaling), all-zero, tiny and non-finite blocks, every block size the paths use.
TEST(BlockGemv, QuantizedActivationsAreTheSameOnEveryLevel) {
  if (cpu_features().level != SimdLevel::Avx512) GTEST_SKIP() << "no AVX-512 here";
  const Restore restore;
  std::vector<float> x = gaussian(1024, 8);
  for (int i = 0; i < 32; ++i) x[size_t(i)] = (i % 2 ? -1.0f : 1.0f) * (float(i / 2) + 0.5f);  // ties
  x[31] = 127.0f;                                   // scale 1 for the first block
  for (int i = 64; i < 96; ++i) x[size_t(i)] = 0;   // all zero
  for (int i = 96; i < 128; ++i) x[size_t(i)] = 1e-42f * float(i);  // subnormal
  x[200] = INFINITY;
  x[300] = NAN;
  for (int64_t block : {32, 64, 128, 256}) {
    Int8Activations a, b;
    quantize_activations(x.data(), 1024, block, a);
    set_simd_level(SimdLevel::Avx2);
    quantize_activations(x.data(), 1024, block, b);
    set_simd_level(SimdLevel::Avx512);
    EXPECT_EQ(a.q, b.q) << block;
    EXPECT_EQ(a.qsum16, b.qsum16) << block;
    ASSERT_EQ(a.d.size(), b.d.size());
    for (size_t i = 0; i < a.d.size(); ++i)
      EXPECT_TRUE(a.d[i] == b.d[i] || (std::isnan(a.d[i]) && std::isnan(b.d[i]))) << block << " " << i;
    if (block == 32) {
      EXPECT_EQ(a.q[0], 1);   // 0.5 rounds away from zero
      EXPECT_EQ(a.q[1], -1);  // -0.5 too
      EXPECT_EQ(a.q[3], -2);  // -1.5
    }
  }
}

TEST(BlockGemv, QuantizedActivationsRoundToNearestInBlocksOf32) {
  std::vector<float> x = gaussian(96, 3);
  for (int i = 32; i < 64; ++i) x[size_t(i)] = 0;  // an all-zero block has scale 0
  x[70] = -9.0f;                                   // the extreme value maps to -127
  Int8Activations q;
  quantize_activations(x.data(), 96, 32, q);
  ASSERT_EQ(q.q.size(), 96u);
  ASSERT_EQ(q.d.size(), 3u);
  ASSERT_EQ(q.sum16.size(), 6u);
  EXPECT_EQ(q.d[1], 0.0f);
  EXPECT_FLOAT_EQ(q.d[2], 9.0f / 127);
  EXPECT_EQ(q.q[70], -127);
  for (int64_t i = 0; i < 96; ++i) {
    const float d = q.d[size_t(i / 32)];
    EXPECT_LE(std::abs(int(q.q[size_t(i)])), 127);
    EXPECT_LE(std::fabs(x[size_t(i)] - d * float(q.q[size_t(i)])), d * 0.5f * (1 + 1e-5f) + 1e-12f)
        << i;
  }
  for (int g = 0; g < 6; ++g) {
    int s = 0;
    for (int i = 0; i < 16; ++i) s += q.q[size_t(16 * g + i)];
    EXPECT_FLOAT_EQ(q.sum16[size_t(g)], q.d[size_t(g / 2)] * float(s));
  }
}

TEST(BlockGemv, EveryTypeMatchesItsDecodeAtEveryLevel) {
  Restore restore;
  for (SimdLevel level : {SimdLevel::Generic, SimdLevel::Avx2, SimdLevel::Avx512}) {
    set_simd_level(level);
    for (DType t : kTypes) {
      const int64_t block = dtype_info(t).block;
      // k = 7·32 leaves a 32-value tail after the 64-wide steps (32-value types only).
      for (int64_t k : {block == 32 ? int64_t(224) : int64_t(256), int64_t(768)})
        for (int64_t m : {1, 3, 8, 11}) {
          SCOPED_TRACE(std::string(dtype_name(t)) + " k=" + std::to_string(k) +
                       " m=" + std::to_string(m) + " at " + simd_level_name(level));
          const int64_t n = 37;
          const std::vector<uint8_t> raw = random_rows(t, n, k, uint32_t(k + m));
          std::vector<float> w(size_t(n * k));
          to_f32(t, raw.data(), w.data(), w.size());
          const std::vector<float> x = gaussian(size_t(m * k), uint32_t(m));
          std::vector<float> bias = gaussian(size_t(n), 9), y(size_t(m * n), 1.0f);
          matmul_wt_blocks(t, x.data(), k, raw.data(), y.data(), n, m, n, k, bias.data(), true);
          for (int64_t i = 0; i < m; ++i) {
            Int8Activations q;
            quantize_activations(x.data() + i * k, k, activation_block(t), q);
            for (int64_t r = 0; r < n; ++r) {
              double rounded = 0, exact = 0, mag = 0, bound = 0;
              for (int64_t c = 0; c < k; ++c) {
                const double wv = w[size_t(r * k + c)], xv = x[size_t(i * k + c)];
                const double dx = q.d[size_t(c / q.block)];
                rounded += wv * dx * q.q[size_t(c)];
                exact += wv * xv;
                mag += std::fabs(wv * xv) + std::fabs(wv) * dx * 128;
                bound += std::fabs(wv) * dx * 0.5;
              }
              const double got = double(y[size_t(i * n + r)]) - 1.0 - bias[size_t(r)];
              ASSERT_NEAR(got, rounded, 2e-6 * mag + 1e-9) << "row " << r;
              ASSERT_LE(std::fabs(got - exact), bound + 2e-6 * mag + 1e-9) << "row " << r;
            }
          }
        }
    }
  }
}

// Through matmul_wt_stored: int8 activations at every m when on (the default) and the CPU
// has the path, the exact f32 path when off.
TEST(BlockGemv, StoredMatmulChoosesThePathBySwitch) {
  const int64_t n = 20, k = 512, m = 19;  // two chunks of 8 rows and a partial one
  const std::vector<uint8_t> raw = random_rows(DType::Q4_K, n, k, 5);
  const Tensor w = Tensor::view(DType::Q4_K, {n, k}, raw.data(), raw.size(), nullptr, "w");
  const std::vector<float> x = gaussian(size_t(m * k), 4);
  std::vector<float> direct(size_t(m * n)), on(direct.size()), off(direct.size());
  if (!block_gemv_accelerated(DType::Q4_K)) GTEST_SKIP() << "no AVX2: the f32 path runs";
  ASSERT_TRUE(int8_activations());
  for (int64_t rows : {int64_t(1), m}) {
    matmul_wt_stored(x.data(), w, on.data(), rows);
    set_int8_activations(false);
    matmul_wt_stored(x.data(), w, off.data(), rows);
    set_int8_activations(true);
    const std::vector<float> wf = w.to_f32();
    for (int64_t i = 0; i < rows; ++i) {
      // Row i alone through the product: the same as row i among the others.
      matmul_wt_blocks(DType::Q4_K, x.data() + i * k, k, raw.data(), direct.data(), n, 1, n, k);
      for (int64_t r = 0; r < n; ++r) {
        double exact = 0, mag = 0;
        for (int64_t c = 0; c < k; ++c) {
          exact += double(wf[size_t(r * k + c)]) * x[size_t(i * k + c)];
          mag += std::fabs(double(wf[size_t(r * k + c)]) * x[size_t(i * k + c)]);
        }
        EXPECT_EQ(on[size_t(i * n + r)], direct[size_t(r)]) << "m=" << rows << " row " << i;
        EXPECT_NEAR(off[size_t(i * n + r)], exact, 2e-6 * mag);
      }
    }
  }
}

TEST(BlockGemv, RefusesWhatItCannotRead) {
  std::vector<float> x(64), y(1);
  std::vector<uint8_t> w(64 * 2);
  EXPECT_THROW(matmul_wt_blocks(DType::F16, x.data(), 64, w.data(), y.data(), 1, 1, 1, 64),
               std::invalid_argument);
  EXPECT_THROW(matmul_wt_blocks(DType::Q4_K, x.data(), 64, w.data(), y.data(), 1, 1, 1, 64),
               std::invalid_argument);  // 64 values are not a whole super-block
  EXPECT_THROW(matmul_wt_blocks(DType::Q8_0, x.data(), 16, w.data(), y.data(), 1, 1, 1, 32),
               std::invalid_argument);  // ldx < k
}

// A NaN or infinity in x makes the outputs NaN (as the f32 product's would be), never
// undefined codes; a block too small to scale counts as zeros.
TEST(BlockGemv, NonFiniteAndTinyActivations) {
  const int64_t n = 4, k = 256;
  const std::vector<uint8_t> raw = random_rows(DType::Q4_K, n, k, 3);
  std::vector<float> x = gaussian(static_cast<size_t>(k), 1), y(static_cast<size_t>(n));
  x[5] = std::numeric_limits<float>::infinity();
  matmul_wt_blocks(DType::Q4_K, x.data(), k, raw.data(), y.data(), n, 1, n, k);
  for (float v : y) EXPECT_TRUE(std::isnan(v));
  std::fill(x.begin(), x.end(), 1e-44f);  // max/127 is 0 in f32
  matmul_wt_blocks(DType::Q4_K, x.data(), k, raw.data(), y.data(), n, 1, n, k);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}
