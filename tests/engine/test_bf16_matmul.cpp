// Products straight from 16-bit weights (half_gemv.h for m <= 8, the AVX-512 BF16 GEMM
// behind set_bf16_activations for larger m), through matmul_wt_stored, against f64 sums
// computed here from the stored bits: every SIMD level, sizes that are no multiple of a
// vector (k = 1, n = 1), strided x and y, bias and accumulation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "engine/core/half.h"
#include "engine/kernels/bf16_dot_gemm.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/half_gemv.h"
#include "engine/kernels/stored_matmul.h"

using namespace mcw;

namespace {

constexpr double kU32 = 1.0 / (1 << 24);  // f32 unit roundoff
constexpr double kU16 = 1.0 / (1 << 8);   // bf16 unit roundoff (8 significant bits)

struct Restore {
  ~Restore() {
    set_simd_level(SimdLevel::Avx512);
    set_bf16_activations(false);
    set_amx_bf16(true);
  }
};

constexpr SimdLevel kLevels[] = {SimdLevel::Generic, SimdLevel::Avx2, SimdLevel::Avx512};

float widen(DType t, uint16_t h) { return t == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h); }

// A weight [n, k] of random normal values stored as t, its bits, and the values they hold.
struct Weight {
  Tensor w;
  std::vector<uint16_t> bits;
  std::vector<double> value;
};

Weight weight(DType t, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  Weight out{Tensor::zeros(t, {n, k}, "w"), {}, {}};
  auto* bits = static_cast<uint16_t*>(out.w.mutable_data());
  for (int64_t i = 0; i < n * k; ++i) {
    const float v = d(rng);
    bits[i] = t == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
    out.bits.push_back(bits[i]);
    out.value.push_back(widen(t, bits[i]));
  }
  return out;
}

// x [m, k] at stride ldx (the gap filled with values that must not be read into the sum),
// a bias, and y [m, n] at stride ldy prefilled with a value kept where accumulating.
struct Problem {
  int64_t m, n, k, ldx, ldy;
  std::vector<float> x, bias, y;
  bool use_bias, accumulate;
};

Problem problem(int64_t m, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  Problem p{m, n, k, k + 3, n + 5, {}, {}, {}, seed % 2 == 0, seed % 3 != 0};
  p.x.resize(size_t(m * p.ldx));
  for (float& v : p.x) v = 1e3f;  // padding: large, so that reading it shows
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) p.x[size_t(i * p.ldx + j)] = d(rng);
  p.bias.resize(size_t(n));
  for (float& v : p.bias) v = d(rng);
  p.y.assign(size_t(m * p.ldy), 0.5f);
  return p;
}

// Sum and magnitude (Σ|terms|) in f64 of output (i, j), x optionally rounded to bf16 first.
std::pair<double, double> reference(const Problem& p, const Weight& w, int64_t i, int64_t j,
                                    bool round_x) {
  double s = 0, mag = 0;
  for (int64_t c = 0; c < p.k; ++c) {
    float xv = p.x[size_t(i * p.ldx + c)];
    if (round_x) xv = bf16_to_f32(f32_to_bf16(xv));
    const double t = double(xv) * w.value[size_t(j * p.k + c)];
    s += t, mag += std::abs(t);
  }
  const double old = p.accumulate ? 0.5 : 0.0, b = p.use_bias ? p.bias[size_t(j)] : 0.0;
  return {s + old + b, mag + std::abs(old) + std::abs(b)};
}

void run(Problem& p, const Weight& w) {
  matmul_wt_stored(p.x.data(), p.ldx, w.w, p.y.data(), p.ldy, p.m,
                   p.use_bias ? p.bias.data() : nullptr, p.accumulate);
}

// The f32 bound on recursive summation of k + 2 terms (products, bias, the old y): γ·Σ|t|.
double f32_tolerance(int64_t k, double mag) { return double(k + 3) * kU32 * mag + 1e-30; }

// y equals the reference within tol(k, mag), and the padding of y is untouched.
template <class Tol>
void expect_near_reference(const Problem& p, const Weight& w, bool round_x, Tol tol,
                           const std::string& what) {
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      const auto [ref, mag] = reference(p, w, i, j, round_x);
      ASSERT_NEAR(p.y[size_t(i * p.ldy + j)], ref, tol(p.k, mag))
          << what << " m=" << p.m << " n=" << p.n << " k=" << p.k << " at (" << i << ", " << j
          << ")";
    }
    for (int64_t j = p.n; j < p.ldy; ++j) ASSERT_EQ(p.y[size_t(i * p.ldy + j)], 0.5f) << what;
  }
}

const std::vector<std::pair<int64_t, int64_t>> kShapes = {
    {5, 0}, {1, 1}, {1, 37}, {7, 1}, {13, 16}, {5, 33}, {37, 100}, {19, 517}, {300, 1000}};

}  // namespace

TEST(Bf16Matmul, DirectGemvMatchesF64ReferenceAtEveryLevel) {
  Restore restore;
  EXPECT_FALSE(bf16_activations());
  for (SimdLevel level : kLevels) {
    set_simd_level(level);
    for (DType t : {DType::BF16, DType::F16})
      for (auto [n, k] : kShapes) {
        const Weight w = weight(t, n, k, uint32_t(n * 31 + k));
        for (int64_t m = 1; m <= 8; ++m) {
          Problem p = problem(m, n, k, uint32_t(m + n + k));
          run(p, w);
          expect_near_reference(p, w, false, f32_tolerance,
                                std::string(dtype_name(t)) + " " + simd_level_name(level));
        }
      }
  }
}

// The kernel itself, called without matmul_wt_stored around it.
TEST(Bf16Matmul, HalfGemvKernelCalledDirectly) {
  Restore restore;
  for (SimdLevel level : kLevels) {
    set_simd_level(level);
    const Weight w = weight(DType::BF16, 70, 129, 3);
    Problem p = problem(5, 70, 129, 4);
    gemv_wt_half(HalfFormat::BF16, p.x.data(), p.ldx, w.bits.data(), 129, p.y.data(), p.ldy, 5,
                 70, 129, p.use_bias ? p.bias.data() : nullptr, p.accumulate);
    expect_near_reference(p, w, false, f32_tolerance, simd_level_name(level));
  }
  std::vector<float> x(9 * 4), y(9 * 4);
  std::vector<uint16_t> wb(4 * 4);
  EXPECT_THROW(gemv_wt_half(HalfFormat::BF16, x.data(), 4, wb.data(), 4, y.data(), 4, 9, 4, 4),
               std::invalid_argument);
  EXPECT_THROW(gemv_wt_half(HalfFormat::BF16, x.data(), 3, wb.data(), 4, y.data(), 4, 1, 4, 4),
               std::invalid_argument);
}

// m > 8 with the option off: f32 activations, as exact as the decode path.
TEST(Bf16Matmul, LargeMKeepsF32ActivationsByDefault) {
  Restore restore;
  for (SimdLevel level : kLevels) {
    set_simd_level(level);
    for (auto [n, k] : kShapes)
      for (int64_t m : {9, 21}) {
        const Weight w = weight(DType::BF16, n, k, uint32_t(n + k));
        Problem p = problem(m, n, k, uint32_t(m * 7 + k));
        run(p, w);
        expect_near_reference(p, w, false, f32_tolerance, simd_level_name(level));
      }
  }
}

// With bf16 activations each product x̂·w has x̂ = x(1 + δ), |δ| <= 2^-8 (round to nearest,
// 8 significant bits) and w exact, so |Σ x̂w − Σ xw| <= 2^-8 · Σ|xw|; the f32 sums add
// their own (k + 3)·2^-24 · Σ|x̂w| with Σ|x̂w| <= (1 + 2^-8) Σ|xw|. Against x rounded to
// bf16 first and summed in f64 only the f32 part remains.
TEST(Bf16Matmul, Bf16ActivationsStayWithinTheRoundingBound) {
  Restore restore;
  if (!cpu_features().avx512bf16) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  set_simd_level(SimdLevel::Avx512);
  ASSERT_TRUE(bf16_dot_gemm_available());
  set_bf16_activations(true);
  ASSERT_TRUE(bf16_activations());
  const auto rounding_bound = [](int64_t k, double mag) {
    return kU16 * mag + double(k + 3) * kU32 * (1 + kU16) * mag + 1e-30;
  };
  for (auto [n, k] : kShapes)
    for (int64_t m : {9, 11, 13, 14, 70}) {  // every remainder of the 6-row tile
      const Weight w = weight(DType::BF16, n, k, uint32_t(n * 5 + k));
      Problem p = problem(m, n, k, uint32_t(m + 2 * k));
      run(p, w);
      expect_near_reference(p, w, false, rounding_bound, "vs f32 x");
      expect_near_reference(p, w, true, f32_tolerance, "vs bf16 x");
      // The option took effect: summed over outputs, the result is much nearer the product
      // of bf16-rounded x than that of x itself (the f32 paths land the other way round).
      double to_f32 = 0, to_bf16 = 0;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          const double y = p.y[size_t(i * p.ldy + j)];
          to_f32 += std::abs(y - reference(p, w, i, j, false).first);
          to_bf16 += std::abs(y - reference(p, w, i, j, true).first);
        }
      if (k > 0) {  // with k = 0 there is nothing to round
        EXPECT_LT(4 * to_bf16, to_f32) << "n=" << n << " k=" << k << " m=" << m;
      }
    }
  // Small m keeps f32 activations with the option on.
  const Weight w = weight(DType::BF16, 37, 100, 1);
  Problem p = problem(8, 37, 100, 2);
  run(p, w);
  expect_near_reference(p, w, false, f32_tolerance, "m=8 with the option");
}

// The AMX tiles (m >= 16, n % 16 == 0, k % 32 == 0): within the f32 bound of the product
// of bf16-rounded x, on every remainder of the 16-row tile, one or two tiles of W and of x
// per block, and several row blocks of x; their sums run in another order than the AVX-512
// kernel's, which shows that they ran.
TEST(Bf16Matmul, AmxTilesStayWithinTheBoundOfRoundedX) {
  Restore restore;
  set_simd_level(SimdLevel::Avx512);
  set_bf16_activations(true);
  if (!amx_bf16_usable()) GTEST_SKIP() << "this CPU (or its kernel) gives no AMX-BF16";
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{16, 32}, {48, 64}, {96, 1024}, {32, 4096}})
    for (int64_t m : {16, 17, 31, 33, 70, 300}) {
      const Weight w = weight(DType::BF16, n, k, uint32_t(n * 3 + k));
      Problem amx = problem(m, n, k, uint32_t(m + 5 * k));
      run(amx, w);
      expect_near_reference(amx, w, true, f32_tolerance, "amx vs bf16 x");
      set_amx_bf16(false);
      Problem avx = problem(m, n, k, uint32_t(m + 5 * k));
      run(avx, w);
      set_amx_bf16(true);
      if (k >= 1024) EXPECT_NE(amx.y, avx.y) << "n=" << n << " k=" << k << " m=" << m;
    }
}

TEST(Bf16Matmul, Bf16ActivationsNeedAvx512Bf16) {
  Restore restore;
  set_bf16_activations(true);
  set_simd_level(SimdLevel::Avx2);
  EXPECT_FALSE(bf16_dot_gemm_available());
  // Below AVX-512 the option has no kernel: large m stays on f32 activations.
  const Weight w = weight(DType::BF16, 37, 100, 7);
  Problem p = problem(12, 37, 100, 8);
  run(p, w);
  expect_near_reference(p, w, false, f32_tolerance, "option on at avx2");
  std::vector<float> x(100 * 12), y(37 * 12);
  EXPECT_THROW(matmul_wt_bf16_dot(x.data(), 100, w.bits.data(), 100, y.data(), 37, 12, 37, 100),
               std::logic_error);
}
