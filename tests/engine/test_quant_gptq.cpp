#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "engine/compress/gptq.h"
#include "engine/compress/linalg.h"
#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "quant_test_util.h"
#include "simd_level_test.h"

using namespace mcw;
using namespace quant_test;

namespace {

// Inverse of a small SPD matrix by Gauss-Jordan elimination.
std::vector<double> invert(std::vector<double> a, int64_t n) {
  std::vector<double> inv(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[size_t(i * n + i)] = 1;
  for (int64_t c = 0; c < n; ++c) {
    const double p = a[size_t(c * n + c)];
    for (int64_t j = 0; j < n; ++j) a[size_t(c * n + j)] /= p, inv[size_t(c * n + j)] /= p;
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[size_t(r * n + c)];
      for (int64_t j = 0; j < n; ++j)
        a[size_t(r * n + j)] -= f * a[size_t(c * n + j)],
            inv[size_t(r * n + j)] -= f * inv[size_t(c * n + j)];
    }
  }
  return inv;
}

// Optimal Brain Quantisation one column at a time: after each column, the inverse of H
// restricted to the columns still free is recomputed from scratch, and the rounding error
// is spread over them with it. Slow (O(cols⁴)), in f64, and without any of GPTQ's tricks.
// With a finite `tau`, SpQR's outliers as its paper states them: quantising weight w of
// the current column costs (w − q)² / [H_F⁻¹]₀₀ of layer loss (OBS); above
// tau · mean_c(var W[:,c] / [H_F(c)⁻¹]₀₀) the weight is kept (in f16) and spreads only that
// rounding; a group's grid is fitted with the weights whose leave-one-out gain exceeds the
// same bound replaced by the mean of the others (every refit done from scratch here).
std::vector<float> slow_obq(const std::vector<float>& w0, int64_t rows, int64_t cols,
                            const LayerStats& st, const GptqOptions& o, double tau = INFINITY,
                            int* kept = nullptr) {
  const int64_t gs = o.group_size == 0 ? cols : o.group_size;
  std::vector<double> h = st.xtx;
  std::vector<double> w(w0.begin(), w0.end());
  for (int64_t j = 0; j < cols; ++j)
    if (h[size_t(j * cols + j)] == 0) {
      h[size_t(j * cols + j)] = 1;
      for (int64_t r = 0; r < rows; ++r) w[size_t(r * cols + j)] = 0;
    }
  std::vector<int64_t> order(static_cast<size_t>(cols));
  std::iota(order.begin(), order.end(), 0);
  if (o.act_order)
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return h[size_t(a * cols + a)] > h[size_t(b * cols + b)];
    });
  double mean = 0;
  for (int64_t j = 0; j < cols; ++j) mean += h[size_t(j * cols + j)];
  for (int64_t j = 0; j < cols; ++j) h[size_t(j * cols + j)] += o.percdamp * mean / double(cols);

  auto inverse_on = [&](const std::vector<int64_t>& free_cols) {
    const int64_t nf = int64_t(free_cols.size());
    std::vector<double> hf(size_t(nf * nf));
    for (int64_t i = 0; i < nf; ++i)
      for (int64_t j = 0; j < nf; ++j)
        hf[size_t(i * nf + j)] = h[size_t(free_cols[size_t(i)] * cols + free_cols[size_t(j)])];
    return invert(hf, nf);
  };
  // [H_F⁻¹]₀₀ at the step each column is quantised.
  std::vector<double> cost(static_cast<size_t>(cols));
  for (int64_t t = 0; t < cols; ++t)
    cost[size_t(order[size_t(t)])] =
        inverse_on(std::vector<int64_t>(order.begin() + t, order.end()))[0];
  double threshold = INFINITY;
  if (std::isfinite(tau)) {
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) {
      double m = 0, v = 0;
      for (int64_t r = 0; r < rows; ++r) m += w[size_t(r * cols + c)] / double(rows);
      for (int64_t r = 0; r < rows; ++r) v += std::pow(w[size_t(r * cols + c)] - m, 2);
      sum += v / double(rows - 1) / cost[size_t(c)];
    }
    threshold = tau * sum / double(cols);
  }
  auto scaled_error = [&](const std::vector<float>& x, const std::vector<int64_t>& members,
                          const AffineParams& p, int64_t skip) {
    double e = 0;
    for (size_t i = 0; i < x.size(); ++i)
      if (int64_t(i) != skip)
        e += std::pow(x[i] - affine_round(x[i], p, o.bits), 2) / cost[size_t(members[i])];
    return e;
  };
  auto grid_of = [&](int64_t r, const std::vector<int64_t>& members) {
    std::vector<float> v;
    for (int64_t c : members) v.push_back(float(w[size_t(r * cols + c)]));
    const int64_t n = int64_t(v.size());
    if (std::isfinite(threshold)) {
      const double base =
          scaled_error(v, members, affine_params(v.data(), n, 1, o.bits, o.symmetric), -1);
      std::vector<bool> likely(v.size());
      double sum = 0;
      int count = 0;
      for (int64_t j = 0; j < n; ++j) {
        std::vector<float> rest = v;
        rest.erase(rest.begin() + j);
        const AffineParams p = affine_params(rest.data(), n - 1, 1, o.bits, o.symmetric);
        likely[size_t(j)] = base - scaled_error(v, members, p, j) > threshold;
        if (!likely[size_t(j)]) sum += v[size_t(j)], ++count;
      }
      for (int64_t j = 0; j < n; ++j)
        if (likely[size_t(j)]) v[size_t(j)] = float(sum / std::max(count, 1));
    }
    return affine_params(v.data(), n, 1, o.bits, o.symmetric);
  };
  const bool static_groups = o.static_groups && gs < cols;
  std::vector<AffineParams> grid(size_t(rows * (cols / gs)));
  if (static_groups)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < cols / gs; ++g) {
        std::vector<int64_t> m(static_cast<size_t>(gs));
        std::iota(m.begin(), m.end(), g * gs);
        grid[size_t(r * (cols / gs) + g)] = grid_of(r, m);
      }

  std::vector<int64_t> free_cols = order;
  std::vector<float> out(w.size());
  if (kept) *kept = 0;
  for (int64_t t = 0; t < cols; ++t) {
    const int64_t c = order[size_t(t)], nf = int64_t(free_cols.size());
    const std::vector<double> hinv = inverse_on(free_cols);  // free_cols[0] == c
    for (int64_t r = 0; r < rows; ++r) {
      if (!static_groups && t % gs == 0) {
        std::vector<int64_t> members(order.begin() + t, order.begin() + t + gs);
        grid[size_t(r * (cols / gs) + t / gs)] = grid_of(r, members);
      }
      const AffineParams p = grid[size_t(r * (cols / gs) + (static_groups ? c / gs : t / gs))];
      const double wc = w[size_t(r * cols + c)];
      float q = affine_round(float(wc), p, o.bits);
      if (std::pow(wc - q, 2) / hinv[0] > threshold) {
        q = f16_to_f32(f32_to_f16(float(wc)));
        if (kept) ++*kept;
      }
      out[size_t(r * cols + c)] = q;
      const double err = (wc - q) / hinv[0];
      for (int64_t j = 0; j < nf; ++j)
        w[size_t(r * cols + free_cols[size_t(j)])] -= err * hinv[size_t(j)];
    }
    free_cols.erase(free_cols.begin());
  }
  return out;
}

}  // namespace

// The kernel under every factorisation, f64 and f32, at each SIMD path: ragged sizes (tiles
// cut at the bottom and right edge, depth past one packed strip) and leading dimensions
// wider than the rows, against a naive f64 sum; C outside the m×n block is left alone.
class LinalgLevels : public test::SimdLevelTest {};

template <typename T>
void expect_gemm_sub_matches_naive(double tolerance) {
  std::mt19937 rng(7);
  for (auto [m, n, k] : {std::array<int64_t, 3>{1, 1, 1}, {8, 16, 128}, {13, 37, 300},
                         {32, 130, 129}, {3, 5, 7}, {17, 65, 260}}) {
    const int64_t lda = k + 3, ldb = n + 5, ldc = n + 2;
    const auto a = test::uniform_floats(size_t(m * lda), rng);
    const auto b = test::uniform_floats(size_t(k * ldb), rng);
    const auto c0 = test::uniform_floats(size_t(m * ldc), rng);
    std::vector<T> A(a.begin(), a.end()), B(b.begin(), b.end()), C(c0.begin(), c0.end());
    gemm_sub(A.data(), lda, B.data(), ldb, C.data(), ldc, m, n, k);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < ldc; ++j) {
        double want = c0[size_t(i * ldc + j)];
        if (j < n)
          for (int64_t p = 0; p < k; ++p)
            want -= double(A[size_t(i * lda + p)]) * double(B[size_t(p * ldb + j)]);
        ASSERT_NEAR(C[size_t(i * ldc + j)], want, tolerance * double(k + 1))
            << m << "x" << n << "x" << k;
      }
  }
}

TEST_P(LinalgLevels, GemmSubMatchesNaiveOnRaggedStridedBlocks) {
  expect_gemm_sub_matches_naive<double>(1e-12);
  expect_gemm_sub_matches_naive<float>(1e-6);
}

// max |(Uᵀ·U)·H − I| for U from inverse_cholesky_upper_in_place in precision T.
template <typename T>
double inverse_factor_error(const std::vector<double>& h, int64_t n) {
  std::vector<T> u(h.begin(), h.end());
  EXPECT_TRUE(inverse_cholesky_upper_in_place(u.data(), n));
  double worst = 0;
  std::vector<double> utu(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p <= std::min(i, j); ++p)
        utu[size_t(i * n + j)] += double(u[size_t(p * n + i)]) * u[size_t(p * n + j)];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < n; ++p) s += utu[size_t(i * n + p)] * h[size_t(p * n + j)];
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

TEST_P(LinalgLevels, InverseCholeskyFactorOfAWidePsdMatrix) {
  const int64_t n = 300;  // three panels, the last one ragged
  const auto x = gaussian(size_t((n + 50) * n), 3);
  std::vector<double> h(size_t(n * n));
  for (int64_t s = 0; s < n + 50; ++s)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        h[size_t(i * n + j)] += double(x[size_t(s * n + i)]) * x[size_t(s * n + j)];
  EXPECT_LT(inverse_factor_error<double>(h, n), 1e-8);
  // f32 (condition number ~700 here): ~2.4e-6, as the reference's f32 factor gives.
  EXPECT_LT(inverse_factor_error<float>(h, n), 5e-5);
}

INSTANTIATE_TEST_SUITE_P(AllPaths, LinalgLevels, test::all_simd_levels(),
                         test::simd_level_test_name);

TEST(GptqLinalg, CholeskyAndInverseFactorAcrossBlocks) {
  for (int64_t n : {1, 5, 64, 130, 300}) {
    const auto x = gaussian(size_t((n + 20) * n), uint32_t(n));
    std::vector<double> h(size_t(n * n));
    for (int64_t s = 0; s < n + 20; ++s)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
          h[size_t(i * n + j)] += double(x[size_t(s * n + i)]) * x[size_t(s * n + j)];
    std::vector<double> l = h;
    ASSERT_TRUE(cholesky_lower(l.data(), n));
    double worst = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < n; ++p) s += l[size_t(i * n + p)] * l[size_t(j * n + p)];
        worst = std::max(worst, std::fabs(s - h[size_t(i * n + j)]));
        if (j > i) {
          ASSERT_EQ(l[size_t(i * n + j)], 0.0);
        }
      }
    EXPECT_LT(worst, 1e-9 * double(n)) << n;
    std::vector<double> u;
    ASSERT_TRUE(inverse_cholesky_upper(h.data(), n, u));
    // Uᵀ·U·H = I, U upper with a positive diagonal.
    std::vector<double> utu(size_t(n * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < n; ++p) s += u[size_t(p * n + i)] * u[size_t(p * n + j)];
        utu[size_t(i * n + j)] = s;
        if (i > j) {
          ASSERT_EQ(u[size_t(i * n + j)], 0.0);
        }
      }
    worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_GT(u[size_t(i * n + i)], 0.0);
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < n; ++p) s += utu[size_t(i * n + p)] * h[size_t(p * n + j)];
        worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
      }
    }
    EXPECT_LT(worst, 1e-7) << n;
  }
  std::vector<double> indefinite = {1, 2, 2, 1};
  EXPECT_FALSE(cholesky_lower(indefinite.data(), 2));
}

TEST(Gptq, MatchesSlowColumnByColumnObq) {
  const int64_t rows = 16, cols = 32, n = 96;
  const auto x = correlated_inputs(n, cols, 11);
  const LayerStats st = stats_of(x, n, cols);
  const auto w = gaussian(size_t(rows * cols), 12, 0.1f);
  int compared = 0;
  for (int64_t gs : {int64_t(0), int64_t(8)})
    for (bool act : {false, true})
      for (bool stat : {false, true})
        for (int64_t block : {int64_t(128), int64_t(5)})
          for (bool sym : {false, true}) {
            if (stat && (!act || gs == 0)) continue;
            GptqOptions o;
            o.bits = 3, o.symmetric = sym, o.group_size = gs, o.act_order = act,
            o.static_groups = stat, o.block_size = block;
            const CompressedTensor c = quantize_gptq(w.data(), rows, cols, st, o);
            const auto got = c.dequantize().to_f32();
            const auto want = slow_obq(w, rows, cols, st, o);
            int same = 0;
            for (size_t i = 0; i < got.size(); ++i) same += got[i] == want[i];
            // f32 GPTQ against the f64 reference: a weight right on a rounding boundary could
            // flip in principle; on these layers every code agrees.
            EXPECT_EQ(same, int(got.size())) << gs << act << stat << block << sym;
            const double eg = output_error(w.data(), got.data(), rows, cols, st.xtx);
            const double ew = output_error(w.data(), want.data(), rows, cols, st.xtx);
            EXPECT_NEAR(eg, ew, 1e-3 * ew);
            EXPECT_EQ(!c.g_idx.empty(), act && !stat && gs > 0);
            ++compared;
          }
  EXPECT_EQ(compared, 20);
}

TEST(Gptq, BeatsRtnOnLayerOutput) {
  const int64_t rows = 24, cols = 64, n = 256;
  // 2-bit with small dynamic groups and no act-order is the one setting where the error
  // feedback can widen later groups enough to lose to RTN on a single layer (seen: up to
  // 4 % worse on one seed of four); there only the total over the seeds is compared.
  double hard_gptq = 0, hard_rtn = 0;
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    const auto x = correlated_inputs(n, cols, seed * 31);
    const LayerStats st = stats_of(x, n, cols);
    const auto w = gaussian(size_t(rows * cols), seed, 0.05f);
    for (int bits : {2, 3, 4})
      for (int64_t gs : {int64_t(0), int64_t(16)})
        for (bool act : {false, true}) {
          GptqOptions g;
          g.bits = bits, g.group_size = gs, g.act_order = act, g.block_size = 16;
          RtnOptions r;
          r.bits = bits, r.scope = gs ? QuantScope::Group : QuantScope::PerChannel,
          r.group_size = gs;
          const auto gq = quantize_gptq(w.data(), rows, cols, st, g).dequantize().to_f32();
          const auto rq = quantize_rtn(w.data(), rows, cols, r).dequantize().to_f32();
          const double eg = output_error(w.data(), gq.data(), rows, cols, st.xtx);
          const double er = output_error(w.data(), rq.data(), rows, cols, st.xtx);
          if (bits == 2 && gs && !act) {
            hard_gptq += eg, hard_rtn += er;
            continue;
          }
          EXPECT_LT(eg, 0.8 * er) << seed << " " << bits << " " << gs << " " << act;
        }
  }
  EXPECT_LT(hard_gptq, hard_rtn);
}

TEST(Gptq, DeadColumnsAndGroupIndex) {
  const int64_t rows = 8, cols = 32, n = 64;
  auto x = correlated_inputs(n, cols, 3);
  for (int64_t s = 0; s < n; ++s) x[size_t(s * cols + 5)] = 0, x[size_t(s * cols + 17)] = 0;
  const LayerStats st = stats_of(x, n, cols);
  const auto w = gaussian(size_t(rows * cols), 4);
  GptqOptions o;
  o.group_size = 8, o.act_order = true;
  const CompressedTensor c = quantize_gptq(w.data(), rows, cols, st, o);
  const auto d = c.dequantize().to_f32();
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(d[size_t(r * cols + 5)], 0.0f);
    EXPECT_EQ(d[size_t(r * cols + 17)], 0.0f);
  }
  for (float v : d) ASSERT_TRUE(std::isfinite(v));
  ASSERT_EQ(c.g_idx.size(), size_t(cols));
  EXPECT_EQ(c.groups(), 4);
  std::vector<int> members(4, 0);
  for (int32_t g : c.g_idx) members[size_t(g)]++;
  EXPECT_EQ(members, (std::vector<int>{8, 8, 8, 8}));
  EXPECT_EQ(c.storage_bits(), uint64_t(rows * cols * 4 + rows * 4 * (16 + 4) + cols * 32));
}

TEST(Gptq, BadParametersAreClearErrors) {
  const auto x = correlated_inputs(32, 16, 1);
  const LayerStats st = stats_of(x, 32, 16);
  const auto w = gaussian(4 * 16, 2);
  GptqOptions o;
  o.bits = 6;
  EXPECT_THROW(quantize_gptq(w.data(), 4, 16, st, o), Error);
  o.bits = 4, o.group_size = 5;
  EXPECT_THROW(quantize_gptq(w.data(), 4, 16, st, o), Error);
  o.group_size = 0;
  EXPECT_THROW(quantize_gptq(w.data(), 4, 32, st, o), Error);  // stats for 16 columns
  o.percdamp = -1;
  EXPECT_THROW(quantize_gptq(w.data(), 4, 16, st, o), Error);
  LayerStats bad{2, {1, 2, 2, 1}, {1, 1}, {1, 1}, 1};
  o.percdamp = 0;
  try {
    quantize_gptq(w.data(), 2, 2, bad, o, nullptr, "l.w");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not positive definite"), std::string::npos);
  }
  CancelToken t;
  t.cancel();
  GptqOptions per_channel;
  per_channel.group_size = 0;
  EXPECT_THROW(quantize_gptq(w.data(), 4, 16, st, per_channel, &t), Cancelled);
}

TEST(Gptq, SpqrOutliersMatchSlowObqWithOutliers) {
  const int64_t rows = 12, cols = 32, n = 96;
  const auto x = correlated_inputs(n, cols, 21, 2);
  const LayerStats st = stats_of(x, n, cols);
  auto w = gaussian(size_t(rows * cols), 22, 0.1f);
  for (int64_t i = 5; i < rows * cols; i += 37) w[size_t(i)] *= 8;  // planted large weights
  int compared = 0;
  for (bool act : {false, true})
    for (bool stat : {false, true})
      for (int64_t block : {int64_t(128), int64_t(5)})
        for (bool sym : {false, true}) {
          if (stat && !act) continue;
          GptqOptions o;
          o.bits = 2, o.symmetric = sym, o.group_size = 8, o.act_order = act,
          o.static_groups = stat, o.block_size = block, o.outlier_threshold = 1.0;
          GptqReport report;
          const CompressedTensor c =
              quantize_gptq(w.data(), rows, cols, st, o, nullptr, {}, &report);
          int kept = 0;
          const auto want = slow_obq(w, rows, cols, st, o, o.outlier_threshold, &kept);
          const auto got = c.dequantize().to_f32();
          int same = 0;
          for (size_t i = 0; i < got.size(); ++i) same += got[i] == want[i];
          EXPECT_EQ(same, int(got.size())) << act << stat << block << sym;
          EXPECT_EQ(int(c.outlier_index.size()), kept) << act << stat << block << sym;
          EXPECT_EQ(report.outliers, c.outlier_index.size());
          EXPECT_GT(kept, 0);
          EXPECT_LT(kept, rows * cols / 5);
          ++compared;
        }
  EXPECT_EQ(compared, 12);
}

TEST(Gptq, LeaveOneOutGainEqualsRefittingWithoutEachWeight) {
  int extremes_moved = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    const int64_t n = 3 + seed % 14;
    auto x = gaussian(size_t(n), seed);
    if (seed % 5 == 0) x[1] = x[0];  // a tied extreme, maybe
    if (seed % 7 == 0)
      for (float& v : x) v = std::fabs(v) + 0.1f;  // all positive
    const auto d = gaussian(size_t(n), seed + 100);
    std::vector<float> dd(d.size());
    for (size_t i = 0; i < d.size(); ++i) dd[i] = 0.5f + std::fabs(d[i]);
    for (int bits : {2, 3})
      for (bool sym : {false, true}) {
        std::vector<double> gain(static_cast<size_t>(n));
        spqr_leave_one_out_gain(x.data(), dd.data(), n, bits, sym, gain.data());
        auto total = [&](const std::vector<float>& fit, int64_t skip) {
          const AffineParams p = affine_params(fit.data(), int64_t(fit.size()), 1, bits, sym);
          double e = 0;
          for (int64_t i = 0; i < n; ++i)
            if (i != skip)
              e +=
                  std::pow((x[size_t(i)] - affine_round(x[size_t(i)], p, bits)) / dd[size_t(i)], 2);
          return e;
        };
        const double base = total(x, -1);
        for (int64_t j = 0; j < n; ++j) {
          std::vector<float> rest = x;
          rest.erase(rest.begin() + j);
          const double want = base - total(rest, j);
          EXPECT_NEAR(gain[size_t(j)], want, 1e-6 * (1 + base)) << seed << " " << j;
          const double own = std::pow(
              (x[size_t(j)] -
               affine_round(x[size_t(j)], affine_params(x.data(), n, 1, bits, sym), bits)) /
                  dd[size_t(j)],
              2);
          extremes_moved += std::fabs(want - own) > 1e-3 * (1 + base);
        }
      }
  }
  EXPECT_GT(extremes_moved, 50);  // the refit case is exercised, not only the own-error one
}

// The case: 2 bits, groups of 16 on a 48 x 96 layer. Outliers decided after GPTQ
// (writing the original weight back) undo compensation later columns made for them;
// inside the loop they only remove error.
TEST(Gptq, OutliersInsideTheLoopOnlyRemoveError) {
  const int64_t rows = 48, cols = 96, n = 384;
  const auto x = correlated_inputs(n, cols, 5, 3);
  const LayerStats st = stats_of(x, n, cols);
  const auto w = laplace(size_t(rows * cols), 6, 0.05f);
  GptqOptions o;
  o.bits = 2, o.group_size = 16;
  auto error_of = [&](const GptqOptions& g, GptqReport* rep = nullptr) {
    const auto q =
        quantize_gptq(w.data(), rows, cols, st, g, nullptr, {}, rep).dequantize().to_f32();
    return output_error(w.data(), q.data(), rows, cols, st.xtx) /
           output_error(w.data(), std::vector<float>(w.size()).data(), rows, cols, st.xtx);
  };
  const double plain = error_of(o);
  double previous = plain;
  for (double f : {0.01, 0.03}) {
    GptqOptions g = o;
    g.outlier_fraction = f;
    GptqReport rep;
    const double e = error_of(g, &rep);
    EXPECT_LT(e, previous) << f;
    EXPECT_LT(e, 0.75 * plain) << f;
    EXPECT_NEAR(double(rep.outliers), f * double(rows * cols), 0.05 * f * double(rows * cols) + 1)
        << f;
    EXPECT_TRUE(std::isfinite(rep.outlier_threshold));
    GptqOptions t = o;  // the same threshold given directly keeps the same weights
    t.outlier_threshold = rep.outlier_threshold;
    GptqReport again;
    EXPECT_NEAR(error_of(t, &again), e, 1e-2 * e);
    EXPECT_NEAR(double(again.outliers), double(rep.outliers), 2.0);
    previous = e;
  }
}

TEST(Gptq, DampeningIsRaisedUntilTheHessianFactors) {
  // Eigenvalues -0.015 and 2.015: 1 % dampening is not enough, 2 % is.
  LayerStats h{2, {1, 1.015, 1.015, 1}, {1, 1}, {1, 1}, 1};
  const std::vector<float> w = {0.3f, -0.2f, 0.1f, 0.4f};
  GptqOptions o;
  o.group_size = 0;
  GptqReport report;
  const CompressedTensor c = quantize_gptq(w.data(), 2, 2, h, o, nullptr, "l.w", &report);
  EXPECT_DOUBLE_EQ(report.percdamp, 0.02);
  for (float v : c.dequantize().to_f32()) EXPECT_TRUE(std::isfinite(v));
  o.percdamp = 0.05;
  quantize_gptq(w.data(), 2, 2, h, o, nullptr, "l.w", &report);
  EXPECT_DOUBLE_EQ(report.percdamp, 0.05);  // not raised when it factors at once
}
