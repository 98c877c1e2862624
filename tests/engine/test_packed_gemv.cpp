// Packed-weight products against a double-precision product with the matrix that
// CompressedTensor::dequantize() gives, on every SIMD path this CPU has.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <tuple>

#include "engine/compress/low_rank.h"
#include "engine/compress/magnitude.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/packed_weight.h"
#include "engine/kernels/stored_matmul.h"
#include "exact_activations.h"
#include "lut_off.h"
#include "quant_test_util.h"

using namespace mcw;
using quant_test::random_affine;

namespace {

std::vector<SimdLevel> levels() {
  std::vector<SimdLevel> out;
  for (SimdLevel l : {SimdLevel::Generic, SimdLevel::Avx2, SimdLevel::Avx512}) {
    set_simd_level(l);
    if (cpu_features().level == l) out.push_back(l);
  }
  set_simd_level(SimdLevel::Avx512);  // clamped to the hardware
  return out;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// y = X·Wᵀ (+ bias) in double, W from dequantize() (optionally rounded to f16).
std::vector<double> reference(const Tensor& w, const std::vector<float>& X, int64_t m,
                              const float* bias, bool round_f16, std::vector<double>* mag) {
  const int64_t R = w.dim(0), C = w.dim(1);
  const float* W = w.as<float>();
  std::vector<double> y(size_t(m * R));
  if (mag) mag->assign(y.size(), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < R; ++r) {
      double s = bias ? bias[r] : 0.0, a = 0;
      for (int64_t c = 0; c < C; ++c) {
        const float wv = round_f16 ? f16_to_f32(f32_to_f16(W[r * C + c])) : W[r * C + c];
        s += double(wv) * X[size_t(i * C + c)];
        a += std::abs(double(wv) * X[size_t(i * C + c)]);
      }
      y[size_t(i * R + r)] = s;
      if (mag) (*mag)[size_t(i * R + r)] = a;
    }
  return y;
}

// Every SIMD path and m (small and tiled), with and without bias and accumulation.
void check_product(const CompressedTensor& t, PackedKind want, bool round_f16, const char* label,
                   double rel = 2e-5) {
  const test::ExactActivations exact;  // the int8 path: test_packed_gemv_int8.cpp
  const PackedWeight p = PackedWeight::from_compressed(t);
  ASSERT_EQ(p.kind(), want) << label << ": " << p.describe();
  const Tensor w = t.dequantize();
  std::mt19937 rng(7);
  for (int64_t m : {1, 2, 3, 4, 5, 8, 11}) {
    const std::vector<float> X = randn(size_t(m * t.cols), rng);
    const std::vector<float> bias = randn(size_t(t.rows), rng);
    std::vector<double> mag;
    const std::vector<double> ref = reference(w, X, m, bias.data(), round_f16, &mag);
    for (SimdLevel l : levels()) {
      set_simd_level(l);
      std::vector<float> Y(size_t(m * t.rows), 0.5f);
      p.matmul(X.data(), Y.data(), m, bias.data(), /*accumulate=*/true);
      std::vector<float> Y2(size_t(m * t.rows), 99.0f);
      p.matmul(X.data(), Y2.data(), m);
      for (size_t k = 0; k < ref.size(); ++k) {
        const double tol = rel * mag[k] + 1e-5;
        ASSERT_NEAR(Y[k], ref[k] + 0.5, tol) << label << " m=" << m << " " << simd_level_name(l)
                                             << " at " << k << ": " << p.describe();
        ASSERT_NEAR(Y2[k], ref[k] - bias[k % size_t(t.rows)], tol) << label << " no bias";
      }
    }
    set_simd_level(SimdLevel::Avx512);
  }
}

}  // namespace

TEST(PackedGemv, AffineEveryBitsGroupAndShape) {
  const test::LutKernelsOff affine_layout;
  std::mt19937 rng(1);
  struct Shape {
    int64_t rows, cols, group;
  };
  // Odd row counts (tails of the 4-row tile), groups that are and are not multiples of the
  // 32-code unit, per-channel groups over odd widths.
  const Shape shapes[] = {{1, 32, 32},  {5, 96, 32}, {13, 128, 64}, {37, 256, 128}, {7, 37, 37},
                          {9, 100, 50}, {6, 64, 16}, {3, 48, 24},   {70, 640, 128}, {4, 33, 11}};
  for (int bits : {2, 3, 4, 8})
    for (bool sym : {false, true})
      for (const Shape& s : shapes) {
        const CompressedTensor t = random_affine(s.rows, s.cols, bits, s.group, sym, rng);
        const std::string label = "int" + std::to_string(bits) + (sym ? " sym " : " asym ") +
                                  std::to_string(s.rows) + "x" + std::to_string(s.cols) + " g" +
                                  std::to_string(s.group);
        check_product(t, PackedKind::Affine, false, label.c_str());
      }
}

TEST(PackedGemv, AffineWithActOrderGroups) {
  std::mt19937 rng(2);
  for (int bits : {3, 4}) {
    // GPTQ act-order: a permutation of the columns cut into equal groups.
    CompressedTensor t = random_affine(11, 96, bits, 32, false, rng);
    std::vector<int32_t> perm(96);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    t.g_idx.resize(96);
    for (int32_t k = 0; k < 96; ++k) t.g_idx[size_t(perm[size_t(k)])] = k / 32;
    check_product(t, PackedKind::Affine, false, "act-order");
    EXPECT_NE(PackedWeight::from_compressed(t).describe().find("act-order"), std::string::npos);
  }
  // Uneven groups: 3 groups of 5, 20 and 45 columns.
  CompressedTensor t = random_affine(6, 70, 4, 70, true, rng);
  t.g_idx.resize(70);
  for (int32_t c = 0; c < 70; ++c) t.g_idx[size_t(c)] = c < 5 ? 2 : c < 25 ? 0 : 1;
  t.scales.resize(size_t(6 * 3), 0.05f);
  check_product(t, PackedKind::Affine, false, "uneven groups");
}

TEST(PackedGemv, AffineOutliersReplaceTheirWeights) {
  std::mt19937 rng(3);
  CompressedTensor t = random_affine(9, 64, 3, 32, false, rng);
  for (uint32_t i : {0u, 5u, 63u, 64u, 300u, 575u, 300u}) {  // 300 twice: the last one wins
    t.outlier_index.push_back(i);
    t.outlier_value.push_back(f32_to_f16(float(i % 7) - 3.25f));
  }
  check_product(t, PackedKind::Affine, false, "outliers");
  EXPECT_NE(PackedWeight::from_compressed(t).describe().find("6 outliers"), std::string::npos);
}

TEST(PackedGemv, SparseTwoOfFourAgainstItsDense) {
  std::mt19937 rng(4);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5, 36}, {17, 64}, {8, 100}, {1, 4}}) {
    Tensor w = Tensor::from_f32(randn(size_t(rows * cols), rng), {rows, cols}, "w");
    const CompressedTensor t = magnitude_prune(w, {{0.5, 2, 4}, PruneScope::PerRow});
    ASSERT_EQ(t.nm_m, 4);
    check_product(t, PackedKind::Sparse24, true, "2:4");
    const PackedWeight p = PackedWeight::from_compressed(t);
    EXPECT_LT(p.weight_bytes(), uint64_t(rows * ((cols + 31) / 32 * 32) * 2));
  }
  // A mask that claims 2:4 but keeps three of four falls back to dense f16, still exact.
  Tensor w = Tensor::from_f32(randn(8 * 12, rng), {8, 12}, "w");
  CompressedTensor t = magnitude_prune(w, {{0.5, 2, 4}, PruneScope::PerRow});
  t.dense = w;
  t.mask.assign(t.mask.size(), 0);
  for (int i = 0; i < 3; ++i) t.mask[0] |= uint8_t(1u << i);
  for (int64_t i = 0; i < 96; ++i)
    if (!t.kept(i)) t.dense.mutable_as<float>()[i] = 0;
  check_product(t, PackedKind::F16, true, "not 2:4");
  EXPECT_NE(PackedWeight::from_compressed(t).describe().find("fallback"), std::string::npos);
}

TEST(PackedGemv, DenseLowRankAndCodebook) {
  std::mt19937 rng(5);
  const Tensor w = Tensor::from_f32(randn(23 * 45, rng), {23, 45}, "w");
  check_product(dense_tensor(w, "w"), PackedKind::F16, true, "dense");

  LowRankOptions lo;
  lo.rank = 6;
  check_product(low_rank(w, lo), PackedKind::LowRank, false, "low-rank");

  CompressedTensor cb;
  cb.name = "cb", cb.rows = 6, cb.cols = 40, cb.coding = WeightCoding::Codebook;
  cb.bits = 2, cb.group_size = 40;
  std::vector<uint8_t> q(240);
  for (size_t i = 0; i < q.size(); ++i) q[i] = uint8_t(i * 7 % 4);
  cb.codes = pack_codes(q.data(), q.size(), 2);
  for (int k = 0; k < 6 * 4; ++k)
    cb.codebook.push_back(f16_to_f32(f32_to_f16(0.1f * float(k - 9))));
  check_product(cb, PackedKind::F16, true, "codebook");
  EXPECT_NE(PackedWeight::from_compressed(cb).describe().find("fallback: codebook"),
            std::string::npos);

  // from_f32 as f32 goes through the f32 GEMM unchanged.
  const PackedWeight f = PackedWeight::from_f32(w.as<float>(), 23, 45, false);
  EXPECT_EQ(f.kind(), PackedKind::F32);
  std::vector<float> x = randn(45, rng), y(23);
  f.matmul(x.data(), y.data(), 1);
  const std::vector<double> ref = reference(w, x, 1, nullptr, false, nullptr);
  for (size_t k = 0; k < 23; ++k) EXPECT_NEAR(y[k], ref[k], 1e-4);
}

TEST(PackedGemv, DequantizeRowsMatchesTheTensor) {
  std::mt19937 rng(6);
  CompressedTensor t = random_affine(10, 96, 3, 32, false, rng);
  std::vector<int32_t> perm(96);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  t.g_idx.resize(96);
  for (int32_t k = 0; k < 96; ++k) t.g_idx[size_t(perm[size_t(k)])] = k / 32;
  const PackedWeight p = PackedWeight::from_compressed(t);
  const Tensor w = t.dequantize();
  std::vector<float> rows(size_t(4 * 96));
  p.dequantize_rows(3, 7, rows.data());
  for (int64_t k = 0; k < 4 * 96; ++k)
    ASSERT_NEAR(rows[size_t(k)], w.as<float>()[3 * 96 + k], 1e-6);
  EXPECT_THROW(p.dequantize_rows(5, 11, rows.data()), std::invalid_argument);
}

TEST(PackedGemv, WeightBytesOfQ4G128) {
  std::mt19937 rng(8);
  const PackedWeight p = PackedWeight::from_compressed(random_affine(64, 512, 4, 128, false, rng));
  EXPECT_EQ(p.weight_bytes(), uint64_t(64 * 512 / 2 + 64 * 4 * 8));  // codes + scale, offset
  EXPECT_EQ(p.describe(), "affine int4 g128 asym packed");
}

TEST(PackedGemv, HostileTensorsAndArgumentsThrow) {
  std::mt19937 rng(9);
  const CompressedTensor good = random_affine(4, 64, 4, 32, false, rng);
  auto bad = [&](auto edit) {
    CompressedTensor t = good;
    edit(t);
    EXPECT_THROW(PackedWeight::from_compressed(t), Error);
  };
  bad([](CompressedTensor& t) { t.codes.resize(t.codes.size() - 1); });
  bad([](CompressedTensor& t) { t.scales.pop_back(); });
  bad([](CompressedTensor& t) { t.zeros.clear(); });
  bad([](CompressedTensor& t) { t.bits = 9; });
  bad([](CompressedTensor& t) { t.group_size = 0; });
  bad([](CompressedTensor& t) { t.g_idx.assign(63, 0); });
  bad([](CompressedTensor& t) { t.g_idx.assign(64, -1); });
  bad([](CompressedTensor& t) { t.g_idx.assign(64, 1 << 30); });  // scales do not cover it
  bad([](CompressedTensor& t) { t.mask.assign(3, 0xff); });
  bad([](CompressedTensor& t) { t.outlier_index = {256}, t.outlier_value = {0}; });
  bad([](CompressedTensor& t) { t.outlier_index = {1}; });
  bad([](CompressedTensor& t) { t.rows = -1; });
  bad([](CompressedTensor& t) {
    t.coding = WeightCoding::Dense;
    t.dense = Tensor::zeros(DType::F32, {4, 63});
  });
  bad([](CompressedTensor& t) {
    t.coding = WeightCoding::LowRank;
    t.rank = 2;
    t.lr_a = Tensor::zeros(DType::F32, {4, 2});
    t.lr_b = Tensor::zeros(DType::F32, {3, 64});
  });
  const PackedWeight p = PackedWeight::from_compressed(good);
  std::vector<float> x(64 * 2), y(8);
  EXPECT_THROW(p.matmul(x.data(), 63, y.data(), 4, 1), std::invalid_argument);
  EXPECT_THROW(p.matmul(x.data(), 64, y.data(), 3, 1), std::invalid_argument);
  EXPECT_THROW(p.matmul(x.data(), y.data(), -1), std::invalid_argument);
  p.matmul(x.data(), y.data(), 0);  // nothing to do
}

namespace {

// AWQ-like input scale: spread over two decades, as activation-aware scales are.
std::vector<float> random_input_scale(int64_t cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> e(-1.0f, 1.0f);
  std::vector<float> s(static_cast<size_t>(cols));
  for (float& v : s) v = std::pow(10.0f, e(rng));
  return s;
}

}  // namespace

TEST(PackedGemv, InputScaledAffineMatchesItsDequantize) {
  const test::LutKernelsOff affine_layout;
  std::mt19937 rng(10);
  for (int bits : {3, 4, 8})
    for (auto [rows, cols, group] : {std::tuple<int64_t, int64_t, int64_t>{5, 96, 32},
                                     {37, 256, 128},
                                     {7, 37, 37},
                                     {70, 640, 128}}) {
      CompressedTensor t = random_affine(rows, cols, bits, group, bits == 8, rng);
      t.input_scale = random_input_scale(cols, rng);
      const std::string label = "input-scaled int" + std::to_string(bits) + " " +
                                std::to_string(rows) + "x" + std::to_string(cols);
      check_product(t, PackedKind::Affine, false, label.c_str());
    }
  // With act-order columns and outliers: s applies to the original column order and to
  // the outliers' columns too.
  CompressedTensor t = random_affine(11, 96, 4, 32, false, rng);
  std::vector<int32_t> perm(96);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  t.g_idx.resize(96);
  for (int32_t k = 0; k < 96; ++k) t.g_idx[size_t(perm[size_t(k)])] = k / 32;
  for (uint32_t i : {0u, 95u, 500u}) {
    t.outlier_index.push_back(i);
    t.outlier_value.push_back(f32_to_f16(1.5f));
  }
  t.input_scale = random_input_scale(96, rng);
  check_product(t, PackedKind::Affine, false, "input-scaled act-order outliers");

  // The scale is really applied: against the tensor without it, the product differs.
  CompressedTensor plain = t;
  plain.input_scale.clear();
  const PackedWeight a = PackedWeight::from_compressed(t), b = PackedWeight::from_compressed(plain);
  std::vector<float> x = randn(96, rng), ya(11), yb(11);
  a.matmul(x.data(), ya.data(), 1);
  b.matmul(x.data(), yb.data(), 1);
  EXPECT_NE(ya, yb);
  EXPECT_EQ(a.weight_bytes(), b.weight_bytes() + 96 * 4);
  EXPECT_NE(a.describe().find("input divided by its scale"), std::string::npos);
  EXPECT_EQ(a.input_scale(), t.input_scale);
}

TEST(PackedGemv, InputScaledFallbacksAndDequantizeRows) {
  std::mt19937 rng(11);
  // 5-bit codes have no kernel: the f16 fallback holds W·diag(s) rounded to f16, which
  // differs from the reference's rounding of W·diag(s)/s, hence the f16-sized tolerance.
  CompressedTensor t5 = random_affine(9, 64, 5, 32, false, rng);
  t5.input_scale = random_input_scale(64, rng);
  check_product(t5, PackedKind::F16, false, "input-scaled 5-bit fallback", 2e-3);

  const Tensor w = Tensor::from_f32(randn(13 * 40, rng), {13, 40}, "w");
  LowRankOptions lo;
  lo.rank = 4;
  CompressedTensor lr = low_rank(w, lo);
  lr.input_scale = random_input_scale(40, rng);
  check_product(lr, PackedKind::LowRank, false, "input-scaled low-rank");

  CompressedTensor t = random_affine(10, 96, 3, 32, false, rng);
  t.input_scale = random_input_scale(96, rng);
  const PackedWeight p = PackedWeight::from_compressed(t);
  const Tensor want = t.dequantize();
  std::vector<float> rows(size_t(4 * 96));
  p.dequantize_rows(3, 7, rows.data());
  for (int64_t k = 0; k < 4 * 96; ++k)
    ASSERT_NEAR(rows[size_t(k)], want.as<float>()[3 * 96 + k],
                1e-6 * (1 + std::abs(want.as<float>()[3 * 96 + k])));
}

TEST(PackedGemv, HostileInputScaleThrows) {
  std::mt19937 rng(12);
  CompressedTensor good = random_affine(4, 64, 4, 32, false, rng);
  good.input_scale.assign(64, 2.0f);
  EXPECT_NO_THROW(PackedWeight::from_compressed(good));
  for (auto edit : {+[](CompressedTensor& t) { t.input_scale.pop_back(); },
                    +[](CompressedTensor& t) { t.input_scale[5] = 0.0f; },
                    +[](CompressedTensor& t) { t.input_scale[63] = INFINITY; },
                    +[](CompressedTensor& t) { t.input_scale[0] = NAN; }}) {
    CompressedTensor t = good;
    edit(t);
    EXPECT_THROW(PackedWeight::from_compressed(t), Error);
  }
}
