// Affine packed products on int8 activations (packed_weight.h: affine_activation_block), on
// every SIMD path this CPU has, against sums in f64 over CompressedTensor::dequantize():
//  - with the activations rounded as quantize_activations rounds them (blocks of
//    affine_activation_block slots), the product equals the f64 sum up to f32 rounding:
//    this pins the unpacking of every code width and the per-block scales;
//  - against the exact activations the error stays within Σ|w·s|·dx/2 (s the input scale),
//    also with act-order columns, input scales, outliers and groups that are not whole units;
//  - m > 8, and the switch off, keep the exact f32 product.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "engine/core/half.h"
#include "engine/kernels/block_gemv.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/packed_weight.h"
#include "engine/kernels/stored_matmul.h"
#include "lut_off.h"
#include "quant_test_util.h"

using namespace mcw;
using quant_test::gaussian;
using quant_test::random_affine;

namespace {

// A kernel path: a SIMD level and, at AVX2, whether the 256-bit vpdpbusd may be used.
struct Path {
  SimdLevel level;
  bool vnni;
  void select() const {
    set_simd_level(level);
    set_vnni256(vnni);
  }
  std::string name() const { return packed_gemv_path(); }
};

// Every path this CPU has: at AVX2, vpmaddubsw and (where the CPU has one) vpdpbusd.
std::vector<Path> levels() {
  std::vector<Path> out;
  for (Path p : {Path{SimdLevel::Generic, false}, Path{SimdLevel::Avx2, false},
                 Path{SimdLevel::Avx2, true}, Path{SimdLevel::Avx512, true}}) {
    p.select();
    if (cpu_features().level == p.level &&
        (p.level != SimdLevel::Avx2 || (cpu_features().vnni256 != Vnni256::None) == p.vnni))
      out.push_back(p);
  }
  Path{SimdLevel::Avx512, true}.select();  // clamped to the hardware
  return out;
}

struct Restore {
  ~Restore() {
    set_simd_level(SimdLevel::Avx512);
    set_vnni256(true);
    set_int8_activations(true);
  }
};

// Per row of X: the f64 product with the rounded x (when `block` > 0: slots = columns),
// the exact one, the rounding bound Σ|w·s|·max_dx/2 and Σ|w·x| (for f32 rounding).
struct Reference {
  std::vector<double> rounded, exact, bound, mag;
};

Reference reference(const CompressedTensor& t, const std::vector<float>& X, int64_t m,
                    int64_t block) {
  const Tensor w = t.dequantize();
  const int64_t R = t.rows, C = t.cols;
  Reference ref;
  for (int64_t i = 0; i < m; ++i) {
    std::vector<float> xs(static_cast<size_t>(C));  // x as the layout sees it: divided by the input scale
    for (int64_t c = 0; c < C; ++c)
      xs[size_t(c)] = X[size_t(i * C + c)] / (t.input_scale.empty() ? 1.0f : t.input_scale[size_t(c)]);
    Int8Activations q;
    if (block > 0) quantize_activations(xs.data(), C, block, q);
    float amax = 0;
    for (float v : xs) amax = std::max(amax, std::fabs(v));
    for (int64_t r = 0; r < R; ++r) {
      double rounded = 0, exact = 0, bound = 0, mag = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double wv = w.as<float>()[r * C + c];
        const double s = t.input_scale.empty() ? 1.0 : t.input_scale[size_t(c)];
        exact += wv * X[size_t(i * C + c)];
        if (block > 0) rounded += wv * s * q.d[size_t(c / block)] * q.q[size_t(c)];
        bound += std::fabs(wv * s) * amax / 127 * 0.5;
        mag += std::fabs(wv * X[size_t(i * C + c)]) + std::fabs(wv * s) * amax;
      }
      ref.rounded.push_back(rounded), ref.exact.push_back(exact);
      ref.bound.push_back(bound), ref.mag.push_back(mag);
    }
  }
  return ref;
}

// The product at every level, with a bias and accumulation (Y starts at 0.5).
std::vector<float> product(const PackedWeight& p, const std::vector<float>& X, int64_t m,
                           const std::vector<float>& bias) {
  std::vector<float> Y(size_t(m * p.rows()), 0.5f);
  p.matmul(X.data(), Y.data(), m, bias.data(), /*accumulate=*/true);
  for (size_t k = 0; k < Y.size(); ++k) Y[k] -= 0.5f + bias[k % size_t(p.rows())];
  return Y;
}

}  // namespace

TEST(PackedGemvInt8, ActivationBlockIsTheGroupUpTo256Slots) {
  EXPECT_EQ(affine_activation_block(32), 32);
  EXPECT_EQ(affine_activation_block(128), 128);
  EXPECT_EQ(affine_activation_block(256), 256);
  EXPECT_EQ(affine_activation_block(512), 256);
  EXPECT_EQ(affine_activation_block(640), 160);   // 20 units: 5 per block
  EXPECT_EQ(affine_activation_block(11 * 32), 32);  // a prime number of units
  EXPECT_THROW(affine_activation_block(48), std::invalid_argument);
}

// The paths the tests below walk: at AVX2 both dot instructions where the CPU has
// vpdpbusd (the EVEX instance on an AVX-512 VNNI CPU, the VEX one on an AVX-VNNI CPU).
TEST(PackedGemvInt8, TestsReachBothAvx2DotInstructions) {
  Restore restore;
  std::vector<std::string> names;
  for (const Path& l : levels()) {
    l.select();
    names.push_back(l.name());
  }
  const CpuFeatures& f = cpu_features();
  if (!f.avx2) GTEST_SKIP() << "no AVX2";
  EXPECT_NE(std::find(names.begin(), names.end(), "avx2"), names.end());
  if (f.avxvnni)
    EXPECT_NE(std::find(names.begin(), names.end(), "avx2+avx-vnni"), names.end());
  else if (f.avx512vnni && f.avx512vl)
    EXPECT_NE(std::find(names.begin(), names.end(), "avx2+avx512vl-vnni"), names.end());
}

TEST(PackedGemvInt8, EqualsTheProductWithRoundedActivations) {
  const test::LutKernelsOff affine_layout;
  Restore restore;
  std::mt19937 rng(21);
  struct Shape {
    int64_t rows, cols, group;
  };
  // Groups of whole units (slots = columns): one activation block per group up to 256
  // slots, several in a group of 512 or a whole row of 640; odd row counts for the tiles.
  const Shape shapes[] = {{5, 96, 32},    {13, 128, 64}, {37, 256, 128},
                          {9, 512, 256},  {6, 1024, 512}, {7, 640, 640}};
  for (int bits : {2, 3, 4, 8})
    for (bool sym : {false, true})
      for (const Shape& sh : shapes) {
        const CompressedTensor t = random_affine(sh.rows, sh.cols, bits, sh.group, sym, rng);
        const PackedWeight p = PackedWeight::from_compressed(t);
        ASSERT_EQ(p.kind(), PackedKind::Affine);
        const int64_t block = affine_activation_block(sh.group);
        for (int64_t m : {1, 2, 3, 5, 8}) {
          const std::vector<float> X = gaussian(size_t(m * sh.cols), uint32_t(m + bits));
          const std::vector<float> bias = gaussian(size_t(sh.rows), 5);
          const Reference ref = reference(t, X, m, block);
          for (const Path& l : levels()) {
            l.select();
            SCOPED_TRACE("int" + std::to_string(bits) + (sym ? " sym " : " asym ") +
                         std::to_string(sh.rows) + "x" + std::to_string(sh.cols) + " g" +
                         std::to_string(sh.group) + " m=" + std::to_string(m) + " at " + l.name());
            const std::vector<float> Y = product(p, X, m, bias);
            for (size_t k = 0; k < Y.size(); ++k) {
              ASSERT_NEAR(Y[k], ref.rounded[k], 2e-6 * ref.mag[k] + 1e-5) << k;
              ASSERT_LE(std::fabs(Y[k] - ref.exact[k]), ref.bound[k] + 2e-6 * ref.mag[k] + 1e-5);
            }
          }
        }
      }
}

TEST(PackedGemvInt8, ActOrderInputScaleOutliersAndPartialUnitsStayWithinTheBound) {
  Restore restore;
  std::mt19937 rng(22);
  std::vector<CompressedTensor> cases;
  for (auto [cols, group] : {std::pair<int64_t, int64_t>{37, 37}, {100, 50}, {33, 11}, {70, 70}})
    cases.push_back(random_affine(9, cols, 4, group, false, rng));
  CompressedTensor act = random_affine(11, 96, 3, 32, false, rng);
  std::vector<int32_t> perm(96);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  act.g_idx.resize(96);
  for (int32_t k = 0; k < 96; ++k) act.g_idx[size_t(perm[size_t(k)])] = k / 32;
  for (uint32_t i : {0u, 95u, 500u}) {
    act.outlier_index.push_back(i);
    act.outlier_value.push_back(f32_to_f16(1.5f));
  }
  std::uniform_real_distribution<float> e(-1.0f, 1.0f);
  act.input_scale.resize(96);
  for (float& v : act.input_scale) v = std::pow(10.0f, e(rng));
  cases.push_back(act);
  CompressedTensor eight = random_affine(7, 256, 8, 128, true, rng);
  eight.input_scale = act.input_scale;
  eight.input_scale.resize(256, 0.5f);
  cases.push_back(eight);
  for (const CompressedTensor& t : cases) {
    const PackedWeight p = PackedWeight::from_compressed(t);
    ASSERT_EQ(p.kind(), PackedKind::Affine) << p.describe();
    for (int64_t m : {1, 4, 8}) {
      const std::vector<float> X = gaussian(size_t(m * t.cols), uint32_t(m));
      const std::vector<float> bias = gaussian(size_t(t.rows), 6);
      const Reference ref = reference(t, X, m, 0);
      for (const Path& l : levels()) {
        l.select();
        SCOPED_TRACE(p.describe() + " m=" + std::to_string(m) + " at " + l.name());
        const std::vector<float> Y = product(p, X, m, bias);
        for (size_t k = 0; k < Y.size(); ++k)
          ASSERT_LE(std::fabs(Y[k] - ref.exact[k]), ref.bound[k] + 2e-6 * ref.mag[k] + 1e-5) << k;
      }
    }
  }
}

// Off: the exact product at every m. On: int8 activations at every m (above 8 in chunks of
// 8 rows, each row as it would be alone).
TEST(PackedGemvInt8, SwitchOffKeepsTheExactProductAtEveryM) {
  Restore restore;
  std::mt19937 rng(23);
  const CompressedTensor t = random_affine(40, 512, 4, 128, false, rng);
  const PackedWeight p = PackedWeight::from_compressed(t);
  for (int64_t m : {1, 8, 9, 19}) {
    const std::vector<float> X = gaussian(size_t(m * 512), uint32_t(m));
    const std::vector<float> bias(40, 0.0f);
    const Reference ref = reference(t, X, m, affine_activation_block(128));
    set_int8_activations(true);
    const std::vector<float> on = product(p, X, m, bias);
    set_int8_activations(false);
    const std::vector<float> off = product(p, X, m, bias);
    double on_err = 0, off_err = 0;
    for (size_t k = 0; k < on.size(); ++k) {
      ASSERT_NEAR(off[k], ref.exact[k], 2e-6 * ref.mag[k] + 1e-5);
      on_err = std::max(on_err, std::fabs(on[k] - ref.exact[k]));
      off_err = std::max(off_err, std::fabs(off[k] - ref.exact[k]));
    }
    EXPECT_GT(on_err, 10 * off_err) << "m=" << m << ": int8 activations were not used";
    set_int8_activations(true);
    const std::vector<float> last =
        product(p, std::vector<float>(X.end() - 512, X.end()), 1, bias);  // row m − 1 alone
    EXPECT_TRUE(std::equal(last.begin(), last.end(), on.end() - 40)) << "m=" << m;
  }
}

TEST(PackedGemvInt8, NonFiniteActivationsGiveNaN) {
  Restore restore;
  std::mt19937 rng(24);
  const PackedWeight p = PackedWeight::from_compressed(random_affine(8, 256, 4, 128, false, rng));
  std::vector<float> x = gaussian(256, 3), y(8);
  x[200] = std::numeric_limits<float>::infinity();
  for (const Path& l : levels()) {
    l.select();
    p.matmul(x.data(), y.data(), 1);
    for (float v : y) EXPECT_TRUE(std::isnan(v)) << l.name();
  }
}
