// The lookup-table product (lut_gemv.h), on every SIMD path this CPU has, against sums in f64
// computed from the codes (w = scale·(q − zero)):
//  - with the activations rounded as lut_quantize_activations rounds them, the product
//    equals the f64 sum up to f32 rounding: this pins the bit-plane layout, the tables and
//    the plane weights of every code width;
//  - against the exact activations the error stays within Σ_g Σ |w|·dx_g/2 (dx_g: the
//    group's max |x| / 127 with Int8 activations, / 31 with Int6);
//  - the portable, AVX2 and AVX-512 paths agree bit for bit (all sum the same integers and
//    run the same f32 epilogue).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "engine/core/error.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/lut_gemv.h"
#include "engine/kernels/packed_weight.h"
#include "engine/kernels/stored_matmul.h"
#include "lut_off.h"
#include "quant_test_util.h"
#include "simd_level_test.h"

using namespace mcw;
using quant_test::codes_of;
using quant_test::gaussian;
using quant_test::random_affine;

namespace {

// Per (row of x, row of W): the f64 product with x rounded as the layout rounds it, the
// exact one, the rounding bound Σ|w|·dx/2 and Σ|w·x̂| + Σ|w·x| (the scale of f32 rounding).
struct Reference {
  std::vector<double> rounded, exact, bound, mag;
};

Reference reference(const CompressedTensor& t, const std::vector<float>& X, int64_t m,
                    LutActivations act) {
  const std::vector<uint8_t> q = codes_of(t);
  const int64_t R = t.rows, C = t.cols, G = t.groups(), width = G * t.group_size;
  const double sym_zero = double((1 << t.bits) / 2);
  Reference ref;
  for (int64_t i = 0; i < m; ++i) {
    std::vector<float> xp(static_cast<size_t>(width), 0.0f), dx(static_cast<size_t>(G)),
        sx(static_cast<size_t>(G));
    std::copy(X.begin() + i * C, X.begin() + (i + 1) * C, xp.begin());
    std::vector<int8_t> xq(static_cast<size_t>(width));
    lut_quantize_activations(xp.data(), width, t.group_size, act, xq.data(), dx.data(), sx.data());
    for (int64_t r = 0; r < R; ++r) {
      double rounded = 0, exact = 0, bound = 0, mag = 0;
      for (int64_t c = 0; c < C; ++c) {
        const size_t k = size_t(r * G + c / t.group_size);
        const double zero = t.symmetric ? sym_zero : t.zeros[k];
        const double w = double(t.scales[k]) * (double(q[size_t(r * C + c)]) - zero);
        const double xr = double(xq[size_t(c)]) * dx[size_t(c / t.group_size)];
        rounded += w * xr;
        exact += w * X[size_t(i * C + c)];
        bound += std::fabs(w) * dx[size_t(c / t.group_size)] * 0.5;
        mag += std::fabs(w * xr) + std::fabs(w * X[size_t(i * C + c)]) +
               std::fabs(double(t.scales[k]) * zero * xr);
      }
      ref.rounded.push_back(rounded), ref.exact.push_back(exact);
      ref.bound.push_back(bound), ref.mag.push_back(mag);
    }
  }
  return ref;
}

// The product with a bias, accumulated onto Y = 0.5, with the bias and the 0.5 removed.
std::vector<float> product(const LutWeight& w, const std::vector<float>& X, int64_t m,
                           const std::vector<float>& bias) {
  std::vector<float> Y(size_t(m * w.rows()), 0.5f);
  w.matmul(X.data(), Y.data(), m, bias.data(), /*accumulate=*/true);
  for (size_t k = 0; k < Y.size(); ++k) Y[k] -= 0.5f + bias[k % size_t(w.rows())];
  return Y;
}

class LutGemv : public test::SimdLevelTest {};

struct Shape {
  int64_t rows, cols, group;
};

// Row counts around the 16-row block and the 4-block tile (5, 16, 17, 70 = 4 blocks + 6);
// several groups; a last group that is only partly filled (200 = 3·64 + 8); a product big
// enough to be split into tasks (650 rows × 1024: more blocks than one task's grain).
const Shape kShapes[] = {{5, 32, 32},   {16, 96, 32},   {17, 256, 128},
                         {70, 200, 64}, {33, 512, 256}, {650, 1024, 128}};

TEST_P(LutGemv, EqualsTheProductWithRoundedActivationsAndStaysWithinTheBound) {
  std::mt19937 rng(31);
  for (int bits : {1, 2, 3, 4})
    for (bool sym : {false, true})
      for (const Shape& sh : kShapes)
        for (LutActivations act : {LutActivations::Int8, LutActivations::Int6}) {
          const CompressedTensor t = random_affine(sh.rows, sh.cols, bits, sh.group, sym, rng);
          const LutWeight w = LutWeight::from_compressed(t, act);
          const std::vector<int64_t> ms =
              sh.rows > 100 ? std::vector<int64_t>{1, 3} : std::vector<int64_t>{1, 2, 3, 5, 8, 11};
          for (int64_t m : ms) {
            const std::vector<float> X = gaussian(size_t(m * sh.cols), uint32_t(m + 7 * bits));
            const std::vector<float> bias = gaussian(size_t(sh.rows), 5);
            const Reference ref = reference(t, X, m, act);
            SCOPED_TRACE(w.describe() + (sym ? " sym " : " asym ") + std::to_string(sh.rows) + "x" +
                         std::to_string(sh.cols) + " m=" + std::to_string(m) + " on " +
                         lut_gemv_path());
            const std::vector<float> Y = product(w, X, m, bias);
            for (size_t k = 0; k < Y.size(); ++k) {
              ASSERT_NEAR(Y[k], ref.rounded[k], 2e-6 * ref.mag[k] + 1e-5) << k;
              ASSERT_LE(std::fabs(Y[k] - ref.exact[k]), ref.bound[k] + 2e-6 * ref.mag[k] + 1e-5)
                  << k;
            }
          }
        }
}

TEST_P(LutGemv, OverwritesWithoutAccumulateAndANonFiniteInputGivesNaN) {
  std::mt19937 rng(32);
  const CompressedTensor t = random_affine(21, 128, 2, 64, false, rng);
  const LutWeight w = LutWeight::from_compressed(t);
  std::vector<float> X = gaussian(2 * 128, 3);
  const Reference ref = reference(t, X, 2, LutActivations::Int8);
  std::vector<float> Y(2 * 21, 1e30f);
  w.matmul(X.data(), Y.data(), 2);
  for (size_t k = 0; k < Y.size(); ++k) ASSERT_NEAR(Y[k], ref.rounded[k], 2e-6 * ref.mag[k] + 1e-5);
  X[130] = std::numeric_limits<float>::infinity();  // row 1 of x only
  w.matmul(X.data(), Y.data(), 2);
  for (int64_t r = 0; r < 21; ++r) {
    EXPECT_FALSE(std::isnan(Y[size_t(r)])) << r;
    EXPECT_TRUE(std::isnan(Y[size_t(21 + r)])) << r;
  }
}

// Integer sums and the same f32 epilogue: every SIMD path equals the portable one exactly,
// the preparation of x (rounding, tables) included.
TEST_P(LutGemv, AgreesWithThePortablePathBitForBit) {
  const SimdLevel level = GetParam();
  if (level == SimdLevel::Generic) GTEST_SKIP() << "the reference itself";
  const std::string path = lut_gemv_path();
  ASSERT_NE(path, "generic");
  std::mt19937 rng(33);
  for (int bits : {1, 2, 3, 4})
    for (const Shape& sh : kShapes)
      for (LutActivations act : {LutActivations::Int8, LutActivations::Int6}) {
        const CompressedTensor t = random_affine(sh.rows, sh.cols, bits, sh.group, false, rng);
        const LutWeight w = LutWeight::from_compressed(t, act);
        for (int64_t m : {1, 2, 4, 8}) {
          const std::vector<float> X = gaussian(size_t(m * sh.cols), uint32_t(m + bits));
          std::vector<float> generic(size_t(m * sh.rows)), simd(generic.size());
          set_simd_level(SimdLevel::Generic);
          w.matmul(X.data(), generic.data(), m);
          set_simd_level(level);
          w.matmul(X.data(), simd.data(), m);
          ASSERT_EQ(0, std::memcmp(generic.data(), simd.data(), generic.size() * sizeof(float)))
              << w.describe() << " " << sh.rows << "x" << sh.cols << " m=" << m << " on " << path;
        }
      }
}

INSTANTIATE_TEST_SUITE_P(Levels, LutGemv, test::all_simd_levels(), test::simd_level_test_name);

TEST(LutGemvActivations, RoundToTheNearestLevelPerGroup) {
  const std::vector<float> x = gaussian(256, 9);
  for (auto [act, top] : {std::pair{LutActivations::Int8, 127}, {LutActivations::Int6, 31}}) {
    std::vector<int8_t> q(256);
    float dx[2], sx[2];
    lut_quantize_activations(x.data(), 256, 128, act, q.data(), dx, sx);
    for (int g = 0; g < 2; ++g) {
      float amax = 0;
      int sum = 0, reached = 0;
      for (int i = 0; i < 128; ++i) amax = std::max(amax, std::fabs(x[size_t(128 * g + i)]));
      EXPECT_FLOAT_EQ(dx[g], amax / float(top));
      for (int i = 0; i < 128; ++i) {
        const int8_t v = q[size_t(128 * g + i)];
        ASSERT_LE(std::abs(v), top);
        ASSERT_LE(std::fabs(v * dx[g] - x[size_t(128 * g + i)]), dx[g] * 0.5f * (1 + 1e-5f));
        reached += std::abs(v) == top;
        sum += v;
      }
      EXPECT_GE(reached, 1);  // the largest |x| takes the top level
      EXPECT_FLOAT_EQ(sx[g], dx[g] * float(sum));
    }
  }
  std::vector<int8_t> q(256);
  float dx[2], sx[2];
  EXPECT_THROW(lut_quantize_activations(x.data(), 200, 128, LutActivations::Int8, q.data(), dx, sx),
               std::invalid_argument);
}

TEST(LutGemvLayout, SaysWhatItCannotTakeAndChecksCounts) {
  std::mt19937 rng(34);
  CompressedTensor t = random_affine(4, 64, 4, 32, false, rng);
  EXPECT_EQ(LutWeight::unsupported(t), "");
  EXPECT_EQ(LutWeight::from_compressed(t).describe(), "lut int4 g32, x int8");
  EXPECT_EQ(LutWeight::from_compressed(t, LutActivations::Int6).describe(), "lut int4 g32, x int6");
  CompressedTensor e = random_affine(4, 64, 8, 32, false, rng);
  EXPECT_NE(LutWeight::unsupported(e), "");
  e = random_affine(4, 96, 2, 48, false, rng);
  EXPECT_NE(LutWeight::unsupported(e), "");
  e = t, e.g_idx.assign(64, 0);
  EXPECT_NE(LutWeight::unsupported(e), "");
  e = t, e.input_scale.assign(64, 2.0f);
  EXPECT_NE(LutWeight::unsupported(e), "");
  e = t, e.outlier_index = {1}, e.outlier_value = {0};
  EXPECT_NE(LutWeight::unsupported(e), "");
  e = t, e.scales.pop_back();
  EXPECT_THROW(LutWeight::from_compressed(e), Error);
  e = t, e.codes.resize(e.codes.size() / 2);
  EXPECT_THROW(LutWeight::from_compressed(e), Error);
  e = random_affine(4, 64, 8, 32, false, rng);
  EXPECT_THROW(LutWeight::from_compressed(e), Error);
  const LutWeight empty;
  std::vector<float> x(64), y(4);
  EXPECT_THROW(empty.matmul(x.data(), y.data(), 1), Error);
  const LutWeight w = LutWeight::from_compressed(t);
  EXPECT_THROW(w.matmul(x.data(), y.data(), -1), std::invalid_argument);
  EXPECT_THROW(w.matmul(x.data(), 32, y.data(), 4, 1), std::invalid_argument);
}

}  // namespace

// Rows read back from the layout are scale·q + offset of the codes put in (the f32 operations
// of the Affine layout's decode), for every width, ragged rows and a partial last group.
TEST(LutGemv, DequantizedRowsAreTheCodesValues) {
  for (int bits : {1, 2, 3, 4})
    for (bool sym : {true, false}) {
      std::mt19937 rng(uint32_t(bits * 7 + sym));
      const CompressedTensor t = random_affine(37, 200, bits, 64, sym, rng);
      const LutWeight w = LutWeight::from_compressed(t);
      const std::vector<uint8_t> q = codes_of(t);
      const float sym_zero = float((1 << bits) / 2);
      std::vector<float> got(size_t(20 * t.cols));
      w.dequantize_rows(13, 33, got.data());
      for (int64_t r = 13; r < 33; ++r)
        for (int64_t c = 0; c < t.cols; ++c) {
          const size_t k = size_t(r * t.groups() + c / t.group_size);
          const float zero = sym ? sym_zero : t.zeros[k];
          const float want = t.scales[k] * float(q[size_t(r * t.cols + c)]) + -t.scales[k] * zero;
          ASSERT_EQ(got[size_t((r - 13) * t.cols + c)], want) << bits << " " << r << " " << c;
        }
      EXPECT_THROW(w.dequantize_rows(30, 38, got.data()), std::invalid_argument);
    }
}

// PackedWeight takes the lookup-table layout for 1–3-bit codes where the LUT runs on
// AVX-512 VBMI (and only then): its int8 product is LutWeight's bit for bit, its exact path
// (int8 activations off) the f32 product of the dequantised rows, and switching the LUT off
// gives the Affine layout (4 bits always).
TEST(LutGemv, PackedWeightChoosesItForNarrowCodes) {
  if (std::string(lut_gemv_path()) != "avx512") GTEST_SKIP() << "the LUT is chosen on AVX-512 VBMI only";
  std::mt19937 rng(17);
  for (int bits : {1, 2, 3, 4}) {
    const CompressedTensor t = random_affine(40, 256, bits, 128, false, rng);
    const PackedWeight p = PackedWeight::from_compressed(t);
    ASSERT_EQ(p.kind(), bits <= 3 ? PackedKind::Lut : PackedKind::Affine) << p.describe();
    if (bits == 4) continue;
    EXPECT_EQ(p.describe().rfind("lut int" + std::to_string(bits), 0), 0u) << p.describe();
    const std::vector<float> X = gaussian(size_t(3 * t.cols), uint32_t(bits));
    std::vector<float> a(size_t(3 * t.rows)), b(a.size()), exact(a.size()), deq(size_t(t.rows * t.cols));
    p.matmul(X.data(), a.data(), 3);
    LutWeight::from_compressed(t).matmul(X.data(), b.data(), 3);
    EXPECT_EQ(a, b);
    set_int8_activations(false);
    p.matmul(X.data(), exact.data(), 3);
    set_int8_activations(true);
    p.dequantize_rows(0, t.rows, deq.data());
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t r = 0; r < t.rows; ++r) {
        double want = 0, mag = 0;
        for (int64_t c = 0; c < t.cols; ++c)
          want += double(deq[size_t(r * t.cols + c)]) * X[size_t(i * t.cols + c)],
              mag += std::fabs(double(deq[size_t(r * t.cols + c)]) * X[size_t(i * t.cols + c)]);
        ASSERT_NEAR(exact[size_t(i * t.rows + r)], want, 1e-5 * mag + 1e-6) << bits;
      }
    const test::LutKernelsOff off;
    EXPECT_EQ(PackedWeight::from_compressed(t).kind(), bits == 1 ? PackedKind::F16 : PackedKind::Affine);
  }
}
