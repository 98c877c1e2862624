#include <gtest/gtest.h>

#include <cmath>

#include "engine/compress/low_rank.h"
#include "engine/compress/svd.h"
#include "engine/core/error.h"
#include "prune_test_util.h"

using namespace mcw;

namespace {

// n × k matrix with orthonormal columns: Gram-Schmidt (twice) of a Gaussian matrix, in the
// test's own plain loops.
std::vector<double> random_orthonormal(int64_t n, int64_t k, uint32_t seed) {
  const auto g = prune_test::gaussian(size_t(n * k), seed);
  std::vector<double> q(g.begin(), g.end());  // [n, k]
  for (int64_t c = 0; c < k; ++c)
    for (int pass = 0; pass < 2; ++pass) {
      for (int64_t p = 0; p < c; ++p) {
        double d = 0;
        for (int64_t i = 0; i < n; ++i) d += q[size_t(i * k + p)] * q[size_t(i * k + c)];
        for (int64_t i = 0; i < n; ++i) q[size_t(i * k + c)] -= d * q[size_t(i * k + p)];
      }
      double norm = 0;
      for (int64_t i = 0; i < n; ++i) norm += q[size_t(i * k + c)] * q[size_t(i * k + c)];
      for (int64_t i = 0; i < n; ++i) q[size_t(i * k + c)] /= std::sqrt(norm);
    }
  return q;
}

// W = U·diag(sigma)·Vᵀ with random orthonormal U, V.
Tensor with_spectrum(int64_t m, int64_t n, const std::vector<double>& sigma, uint32_t seed) {
  const int64_t k = int64_t(sigma.size());
  const auto U = random_orthonormal(m, k, seed), V = random_orthonormal(n, k, seed + 77);
  std::vector<float> w(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t c = 0; c < k; ++c)
        s += U[size_t(i * k + c)] * sigma[size_t(c)] * V[size_t(j * k + c)];
      w[size_t(i * n + j)] = float(s);
    }
  return Tensor::from_f32(w, {m, n}, "lr.w");
}

std::vector<double> geometric(int64_t k, double first, double ratio) {
  std::vector<double> s(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) s[size_t(i)] = first * std::pow(ratio, double(i));
  return s;
}

double frobenius_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_f32(), y = b.to_f32();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
  return std::sqrt(s);
}

double tail(const std::vector<double>& s, int64_t r) {
  double t = 0;
  for (size_t i = size_t(r); i < s.size(); ++i) t += s[i] * s[i];
  return std::sqrt(t);
}

}  // namespace

TEST(LowRank, JacobiSvdRecoversSpectrumAndFactors) {
  for (auto [m, n] : {std::pair{30, 20}, std::pair{20, 31}}) {
    const auto sigma = geometric(std::min(m, n), 3.0, 0.8);
    const Tensor w = with_spectrum(m, n, sigma, 4);
    const auto v = w.to_f32();
    const std::vector<double> a(v.begin(), v.end());
    const Svd s = jacobi_svd(a.data(), m, n);
    ASSERT_EQ(s.k, std::min(m, n));
    for (int64_t i = 0; i < s.k; ++i) EXPECT_NEAR(s.s[size_t(i)], sigma[size_t(i)], 1e-5);
    double worst = 0;  // U·diag(s)·Vt reproduces A; U and V orthonormal
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double r = 0;
        for (int64_t c = 0; c < s.k; ++c)
          r += s.u[size_t(i * s.k + c)] * s.s[size_t(c)] * s.vt[size_t(c * n + j)];
        worst = std::max(worst, std::fabs(r - a[size_t(i * n + j)]));
      }
    EXPECT_LT(worst, 1e-12);
    for (int64_t p = 0; p < s.k; ++p)
      for (int64_t q = 0; q < s.k; ++q) {
        double du = 0, dv = 0;
        for (int64_t i = 0; i < m; ++i) du += s.u[size_t(i * s.k + p)] * s.u[size_t(i * s.k + q)];
        for (int64_t j = 0; j < n; ++j) dv += s.vt[size_t(p * n + j)] * s.vt[size_t(q * n + j)];
        EXPECT_NEAR(du, p == q, 1e-12);
        EXPECT_NEAR(dv, p == q, 1e-12);
      }
  }
}

TEST(LowRank, EckartYoungErrorExactSvd) {
  for (auto [m, n] : {std::pair{60, 40}, std::pair{36, 70}}) {
    const auto sigma = geometric(std::min(m, n), 5.0, 0.85);
    const Tensor w = with_spectrum(m, n, sigma, 9);
    for (int64_t r : {1, 8, 20}) {
      LowRankOptions o;
      o.rank = r;
      const auto c = low_rank(w, o);
      EXPECT_EQ(c.coding, WeightCoding::LowRank);
      EXPECT_EQ(c.rank, r);
      EXPECT_EQ(c.lr_a.shape(), (Shape{m, r}));
      EXPECT_EQ(c.lr_b.shape(), (Shape{r, n}));
      EXPECT_NEAR(frobenius_diff(w, c.dequantize()), tail(sigma, r), 1e-5 * sigma[0])
          << m << " " << r;
      EXPECT_EQ(c.storage_bits(), uint64_t((m + n) * r * 16));
    }
  }
}

TEST(LowRank, EckartYoungRandomizedPath) {
  const int64_t m = 300, n = 200;
  const auto sigma = geometric(n, 10.0, 0.93);
  const Tensor w = with_spectrum(m, n, sigma, 21);
  LowRankOptions o;
  o.rank = 24;
  o.exact_max_dim = 0;  // force the randomized SVD
  const auto c = low_rank(w, o);
  const double err = frobenius_diff(w, c.dequantize()), best = tail(sigma, 24);
  EXPECT_GE(err, best * (1 - 1e-5));  // nothing beats the truncated SVD
  EXPECT_LE(err, best * 1.01);
}

TEST(LowRank, EnergyTargetPicksTheRank) {
  const int64_t m = 40, n = 32;
  const auto sigma = geometric(n, 4.0, 0.8);
  const Tensor w = with_spectrum(m, n, sigma, 13);
  double total = 0;
  for (double s : sigma) total += s * s;
  std::vector<double> frac;  // cumulative energy of the first r+1 values
  double acc = 0;
  for (double s : sigma) acc += s * s, frac.push_back(acc / total);
  for (int64_t want : {1, 3, 7, 15}) {
    // Halfway between the energies of rank want-1 and want: the smallest rank reaching it is want.
    const double e =
        want == 1 ? frac[0] / 2 : (frac[size_t(want - 2)] + frac[size_t(want - 1)]) / 2;
    LowRankOptions o;
    o.energy = e;
    EXPECT_EQ(low_rank(w, o).rank, want) << e;
    o.exact_max_dim = 0;  // randomized search finds the same rank here
    EXPECT_EQ(low_rank(w, o).rank, want) << e;
  }
  EXPECT_EQ(energy_rank({3, 2, 1}, 0.5, 14), 1);
  EXPECT_EQ(energy_rank({3, 2, 1}, 13.0 / 14, 14), 2);
  EXPECT_EQ(energy_rank({3, 2, 1}, 1.0, 14), 3);
  EXPECT_EQ(energy_rank({3, 2}, 1.0, 14), 0);
}

TEST(LowRank, ActivationAwareBeatsPlainOnAnisotropicInputs) {
  const int64_t rows = 48, cols = 64, n = 256;
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    const Tensor w = prune_test::weight(rows, cols, seed);
    const auto x = prune_test::activations(n, cols, seed, 12.0f);
    const auto st = prune_test::stats_of(x, cols);
    LowRankOptions o;
    o.rank = 8;
    const double plain = prune_test::output_error(w, low_rank(w, o), x, cols);
    o.activation_aware = true;
    const double aware = prune_test::output_error(w, low_rank(w, o, &st), x, cols);
    EXPECT_LT(aware, 0.9 * plain) << seed;
    // Without dampening it is the optimum: the tail of the singular values of W·Xᵀ.
    o.damp = 0;
    const double undamped = prune_test::output_error(w, low_rank(w, o, &st), x, cols);
    const auto wv = w.to_f32();
    std::vector<double> wx(static_cast<size_t>(rows * n));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < n; ++t) {
        double s = 0;
        for (int64_t c = 0; c < cols; ++c)
          s += double(wv[size_t(r * cols + c)]) * x[size_t(t * cols + c)];
        wx[size_t(r * n + t)] = s;
      }
    const Svd s = jacobi_svd(wx.data(), rows, n);
    EXPECT_NEAR(undamped, tail(s.s, 8), 1e-4 * s.s[0]) << seed;
    EXPECT_LE(undamped, aware * (1 + 1e-6));
  }
}

TEST(LowRank, BadOptionsThrow) {
  const Tensor w = prune_test::weight(8, 12, 1);
  const auto with = [&](auto change, const LayerStats* st = nullptr) {
    LowRankOptions o;
    o.rank = 2;
    change(o);
    return low_rank(w, o, st);
  };
  EXPECT_THROW(with([](LowRankOptions& o) { o.rank = 9; }), Error);
  EXPECT_THROW(with([](LowRankOptions& o) { o.rank = -1; }), Error);
  EXPECT_THROW(with([](LowRankOptions& o) { o.rank = 0, o.energy = 1.5; }), Error);
  EXPECT_THROW(with([](LowRankOptions& o) { o.rank = 0; }), Error);
  EXPECT_THROW(with([](LowRankOptions& o) { o.activation_aware = true; }), Error);
  const auto st = prune_test::stats_of(prune_test::activations(4, 10, 1, 1.0f), 10);
  EXPECT_THROW(with([](LowRankOptions& o) { o.activation_aware = true; }, &st), Error);
  CancelToken cancel;
  cancel.cancel();
  LowRankOptions o;
  o.rank = 2;
  EXPECT_THROW(low_rank(w, o, nullptr, &cancel), Cancelled);
}
