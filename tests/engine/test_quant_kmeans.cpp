#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/compress/kmeans.h"
#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "quant_test_util.h"

using namespace mcw;
using namespace quant_test;

namespace {

double cost(const std::vector<float>& x, const std::vector<double>& wt,
            const std::vector<double>& c) {
  double e = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double best = INFINITY;
    for (double v : c) best = std::min(best, (x[i] - v) * (x[i] - v));
    e += wt[i] * best;
  }
  return e;
}

// Plain Lloyd: weighted quantile start (cumulative weight passing (i + ½)/k of the total),
// nearest-centroid by scanning, weighted means; stops when the centroids stop moving.
double naive_lloyd(const std::vector<float>& x, const std::vector<double>& wt, int k) {
  std::vector<size_t> o(x.size());
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  const double total = std::accumulate(wt.begin(), wt.end(), 0.0);
  std::vector<double> c;
  for (int i = 0; i < k; ++i) {
    const double target = (i + 0.5) / k * total;
    double cum = 0;
    size_t j = 0;
    while (j + 1 < o.size() && cum + wt[o[j]] < target) cum += wt[o[j++]];
    c.push_back(x[o[j]]);
  }
  for (int it = 0; it < 1000; ++it) {
    std::vector<double> sw(static_cast<size_t>(k)), swx(static_cast<size_t>(k));
    for (size_t i = 0; i < x.size(); ++i) {
      size_t best = 0;
      for (size_t j = 1; j < c.size(); ++j)
        if (std::fabs(x[i] - c[j]) < std::fabs(x[i] - c[best])) best = j;
      sw[best] += wt[i], swx[best] += wt[i] * x[i];
    }
    bool moved = false;
    for (int j = 0; j < k; ++j)
      if (sw[size_t(j)] > 0) {
        const double m = swx[size_t(j)] / sw[size_t(j)];
        moved |= std::fabs(m - c[size_t(j)]) > 1e-12;
        c[size_t(j)] = m;
      }
    if (!moved) break;
  }
  return cost(x, wt, c);
}

// Exact optimum in 1-D: clusters are runs of the sorted values (dynamic programming).
double optimal_1d(const std::vector<float>& x, const std::vector<double>& wt, int k) {
  std::vector<size_t> o(x.size());
  std::iota(o.begin(), o.end(), 0);
  std::sort(o.begin(), o.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  const size_t n = x.size();
  auto run_cost = [&](size_t a, size_t b) {  // [a, b)
    double sw = 0, swx = 0, e = 0;
    for (size_t i = a; i < b; ++i) sw += wt[o[i]], swx += wt[o[i]] * x[o[i]];
    const double m = sw > 0 ? swx / sw : 0;
    for (size_t i = a; i < b; ++i) e += wt[o[i]] * (x[o[i]] - m) * (x[o[i]] - m);
    return e;
  };
  std::vector<std::vector<double>> best(size_t(k) + 1, std::vector<double>(n + 1, INFINITY));
  best[0][0] = 0;
  for (int j = 1; j <= k; ++j)
    for (size_t b = 0; b <= n; ++b)
      for (size_t a = 0; a <= b; ++a)
        if (best[size_t(j - 1)][a] < INFINITY)
          best[size_t(j)][b] =
              std::min(best[size_t(j)][b], best[size_t(j - 1)][a] + run_cost(a, b));
  return best[size_t(k)][n];
}

}  // namespace

TEST(Kmeans, MatchesNaiveLloydAndBoundedByOptimum) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    const auto x = laplace(24, seed);
    std::vector<double> wt(24);
    for (size_t i = 0; i < wt.size(); ++i) wt[i] = 0.5 + double((i * 7 + seed) % 5);
    for (int k : {2, 4}) {
      const Kmeans1d km =
          weighted_kmeans_1d(x.data(), wt.data(), 24, k, 1000, KmeansInit::Quantile);
      const double naive = naive_lloyd(x, wt, k), opt = optimal_1d(x, wt, k);
      EXPECT_LE(km.objective, naive * (1 + 1e-6) + 1e-12) << seed << " " << k;
      EXPECT_GE(km.objective, opt * (1 - 1e-6)) << seed << " " << k;
      const std::vector<double> c(km.centroids.begin(), km.centroids.end());
      EXPECT_NEAR(km.objective, cost(x, wt, c), 1e-9 * (1 + km.objective));
      const Kmeans1d pp =
          weighted_kmeans_1d(x.data(), wt.data(), 24, k, 1000, KmeansInit::PlusPlus, seed);
      EXPECT_GE(pp.objective, opt * (1 - 1e-6));
      // Deterministic for a seed.
      EXPECT_EQ(pp.centroids,
                weighted_kmeans_1d(x.data(), wt.data(), 24, k, 1000, KmeansInit::PlusPlus, seed)
                    .centroids);
    }
  }
}

TEST(Kmeans, ObjectiveNeverIncreases) {
  const auto x = laplace(4096, 3);
  std::vector<double> wt(4096);
  for (size_t i = 0; i < wt.size(); ++i) wt[i] = std::exp(std::sin(double(i)));
  for (KmeansInit init : {KmeansInit::Quantile, KmeansInit::PlusPlus}) {
    std::vector<double> hist;
    weighted_kmeans_1d(x.data(), wt.data(), 4096, 16, 100, init, 5, &hist);
    ASSERT_GE(hist.size(), 3u);
    for (size_t i = 1; i < hist.size(); ++i) EXPECT_LE(hist[i], hist[i - 1] * (1 + 1e-12)) << i;
    EXPECT_LT(hist.back(), hist.front());
  }
}

TEST(Kmeans, BeatsRtnOnNonUniformWeights) {
  const int64_t rows = 16, cols = 256;
  const auto w = laplace(size_t(rows * cols), 12, 0.02f);
  std::vector<double> hd(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) hd[size_t(c)] = std::exp(std::cos(double(c)));
  for (int bits : {2, 3, 4}) {
    for (int64_t gs : {int64_t(0), int64_t(128)}) {
      KmeansOptions k;
      k.bits = bits, k.group_size = gs;
      const CompressedTensor km = quantize_kmeans(w.data(), rows, cols, k, hd.data());
      RtnOptions r;
      r.bits = bits, r.scope = gs ? QuantScope::Group : QuantScope::PerChannel, r.group_size = gs;
      const auto kd = km.dequantize().to_f32();
      const auto rd = quantize_rtn(w.data(), rows, cols, r).dequantize().to_f32();
      EXPECT_LT(weighted_sq_error(w.data(), kd.data(), rows, cols, hd.data()),
                weighted_sq_error(w.data(), rd.data(), rows, cols, hd.data()))
          << bits << " " << gs;
      // Codebook entries are f16 and every weight sits on its nearest entry.
      const int64_t G = km.groups(), levels = int64_t(1) << bits;
      for (float v : km.codebook) ASSERT_EQ(v, f16_to_f32(f32_to_f16(v)));
      for (int64_t i = 0; i < rows * cols; i += 37) {
        const int64_t g = (i / cols) * G + km.group_of(i % cols);
        for (int64_t j = 0; j < levels; ++j)
          EXPECT_LE(std::fabs(kd[size_t(i)] - w[size_t(i)]),
                    std::fabs(km.codebook[size_t(g * levels + j)] - w[size_t(i)]));
      }
      EXPECT_EQ(km.storage_bits(), uint64_t(rows * cols * bits + rows * G * levels * 16));
    }
  }
}

TEST(Kmeans, BadParameters) {
  const auto w = gaussian(8 * 32, 1);
  KmeansOptions k;
  k.bits = 9;
  EXPECT_THROW(quantize_kmeans(w.data(), 8, 32, k), Error);
  k.bits = 3, k.group_size = 5;
  EXPECT_THROW(quantize_kmeans(w.data(), 8, 32, k), Error);
  CancelToken t;
  t.cancel();
  k.group_size = 0;
  EXPECT_THROW(quantize_kmeans(w.data(), 8, 32, k, nullptr, &t), Cancelled);
}
