// The f32 factor of the inverse Hessian, its check, and the f64 fallback (hessian_factor.h),
// against the f64 factor of the sweep's Hessian written out in full.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/compress/hessian_factor.h"
#include "engine/compress/linalg.h"
#include "quant_test_util.h"

using namespace mcw;

namespace {

// Ĥ[i][j] = XᵀX[perm i][perm j], dead diagonals 1, damp on the diagonal.
std::vector<double> sweep_hessian(const std::vector<double>& xtx, int64_t n,
                                  const std::vector<int64_t>& perm,
                                  const std::vector<uint8_t>& dead, double damp) {
  std::vector<double> h(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t a = perm.empty() ? i : perm[size_t(i)], b = perm.empty() ? j : perm[size_t(j)];
      h[size_t(i * n + j)] = xtx[size_t(a * n + b)];
      if (i == j) h[size_t(i * n + j)] += (dead[size_t(a)] ? 1.0 : 0.0) + damp;
    }
  return h;
}

// ‖U·Ĥ·Uᵀ − I‖_F / √n, all of it formed in f64.
double frobenius_residual(const std::vector<float>& u, const std::vector<double>& h, int64_t n) {
  std::vector<double> uh(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = i; p < n; ++p)
      for (int64_t j = 0; j < n; ++j)
        uh[size_t(i * n + j)] += double(u[size_t(i * n + p)]) * h[size_t(p * n + j)];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = j; p < n; ++p) s += uh[size_t(i * n + p)] * double(u[size_t(j * n + p)]);
      const double e = s - (i == j ? 1.0 : 0.0);
      sum += e * e;
    }
  return std::sqrt(sum / double(n));
}

// XᵀX of `samples` Gaussian rows, column `dead_col` always zero.
std::vector<double> gram(int64_t n, int64_t samples, uint32_t seed, int64_t dead_col) {
  const auto x = quant_test::gaussian(size_t(samples * n), seed);
  std::vector<double> h(size_t(n * n), 0.0);
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        if (i != dead_col && j != dead_col)
          h[size_t(i * n + j)] += double(x[size_t(s * n + i)]) * x[size_t(s * n + j)];
  return h;
}

std::vector<float> f64_reference(const std::vector<double>& h, int64_t n) {
  std::vector<double> u;
  EXPECT_TRUE(inverse_cholesky_upper(h.data(), n, u));
  return std::vector<float>(u.begin(), u.end());
}

}  // namespace

// A Hessian as GPTQ sees it (a dead input, act-order permutation, 1 % dampening, three
// panels the last ragged): the f32 factor is taken, it agrees with the f64 one, and the
// residual it reports is the one-probe estimate of ‖U·Ĥ·Uᵀ − I‖_F / √n.
TEST(HessianFactor, F32FactorOfAGptqHessianMatchesF64) {
  const int64_t n = 300;
  const std::vector<double> xtx = gram(n, 2 * n, 11, /*dead_col=*/17);
  std::vector<uint8_t> dead(static_cast<size_t>(n));
  double mean = 0;
  for (int64_t j = 0; j < n; ++j) {
    dead[size_t(j)] = xtx[size_t(j * n + j)] == 0.0;
    mean += dead[size_t(j)] ? 1.0 : xtx[size_t(j * n + j)];
  }
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
    return xtx[size_t(a * n + a)] > xtx[size_t(b * n + b)];
  });
  HessianFactorOptions opt;
  opt.damp = 0.01 * mean / double(n);
  std::vector<float> u;
  HessianFactorReport rep;
  ASSERT_TRUE(factor_inverse_hessian(xtx, n, perm, dead, opt, u, &rep));
  EXPECT_FALSE(rep.f64);
  EXPECT_EQ(rep.residual, rep.f32_residual);
  const std::vector<double> h = sweep_hessian(xtx, n, perm, dead, opt.damp);
  const std::vector<float> want = f64_reference(h, n);
  float scale = 0, worst = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    scale = std::max(scale, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(u[i] - want[i]));
  }
  EXPECT_LT(worst, 2e-6f * scale);
  const double frob = frobenius_residual(u, h, n);
  EXPECT_GT(rep.residual, 0.0);
  EXPECT_LT(rep.residual, 2e-6);
  EXPECT_GT(rep.residual, frob / 3);
  EXPECT_LT(rep.residual, frob * 3);
}

// A Hessian f32 cannot factor (Hilbert matrix + 1e-9·I, condition ~1e9): the f32 attempt is
// refused and the f64 factor, rounded to f32, is returned.
TEST(HessianFactor, IllConditionedHessianFallsBackToF64) {
  const int64_t n = 64;
  std::vector<double> xtx(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) xtx[size_t(i * n + j)] = 1.0 / double(i + j + 1);
  const std::vector<uint8_t> dead(static_cast<size_t>(n), 0);
  HessianFactorOptions opt;
  opt.damp = 1e-9;
  std::vector<float> u;
  HessianFactorReport rep;
  ASSERT_TRUE(factor_inverse_hessian(xtx, n, {}, dead, opt, u, &rep));
  EXPECT_TRUE(rep.f64);
  EXPECT_GT(rep.f32_residual, opt.tolerance);  // inf when the f32 Cholesky failed
  EXPECT_EQ(u, f64_reference(sweep_hessian(xtx, n, {}, dead, opt.damp), n));
  EXPECT_LT(rep.residual, opt.tolerance);
}

TEST(HessianFactor, ToleranceZeroAlwaysFactorsInF64) {
  const int64_t n = 40;
  const std::vector<double> xtx = gram(n, 3 * n, 5, -1);
  const std::vector<uint8_t> dead(static_cast<size_t>(n), 0);
  HessianFactorOptions opt;
  opt.damp = 0.5;
  opt.tolerance = 0;
  std::vector<float> u;
  HessianFactorReport rep;
  ASSERT_TRUE(factor_inverse_hessian(xtx, n, {}, dead, opt, u, &rep));
  EXPECT_TRUE(rep.f64);
  EXPECT_EQ(rep.f32_residual, 0.0);
  EXPECT_EQ(u, f64_reference(sweep_hessian(xtx, n, {}, dead, opt.damp), n));
}

TEST(HessianFactor, IndefiniteHessianIsRefused) {
  const std::vector<double> xtx = {1, 2, 2, 1};
  std::vector<float> u;
  EXPECT_FALSE(factor_inverse_hessian(xtx, 2, {}, {0, 0}, {}, u));
}
