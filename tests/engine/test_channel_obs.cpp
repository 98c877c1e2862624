// Structured OBS channel pruning (engine/compress/channel_obs.h) against closed forms: the
// weights left after any sequence of OBS removals with updates are the least-squares refit
// of the kept columns, W_K = W·H_:K·H_KK⁻¹ (H dampened), and each greedy step removes the
// channel whose refit loses least, found here by brute force.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/compress/channel_obs.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/core/error.h"

namespace mcw {
namespace {

struct Problem {
  int64_t rows, cols;
  std::vector<float> w;
  LayerStats stats;
  std::vector<double> H;  // dampened as the algorithm does
};

Problem make_problem(int64_t rows, int64_t cols, int64_t n, double damp, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  Problem p{rows, cols, std::vector<float>(size_t(rows * cols)), make_layer_stats(cols), {}};
  for (float& v : p.w) v = g(rng);
  std::vector<float> X(size_t(n * cols));
  for (int64_t s = 0; s < n; ++s) {  // correlated inputs: a shared factor plus noise
    const float f = g(rng);
    for (int64_t c = 0; c < cols; ++c) X[size_t(s * cols + c)] = f * float(c % 3) + g(rng);
  }
  accumulate(p.stats, X.data(), n);
  p.H = p.stats.xtx;
  double mean = 0;
  for (int64_t j = 0; j < cols; ++j) mean += p.H[size_t(j * cols + j)];
  mean /= double(cols);
  for (int64_t j = 0; j < cols; ++j) p.H[size_t(j * cols + j)] += damp * mean;
  return p;
}

// Solves A x = b for symmetric positive definite A (Gaussian elimination, small n).
std::vector<double> solve(std::vector<double> A, std::vector<double> b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = i + 1; r < n; ++r) {
      const double f = A[size_t(r * n + i)] / A[size_t(i * n + i)];
      for (int64_t c = i; c < n; ++c) A[size_t(r * n + c)] -= f * A[size_t(i * n + c)];
      b[size_t(r)] -= f * b[size_t(i)];
    }
  }
  for (int64_t i = n - 1; i >= 0; --i) {
    for (int64_t c = i + 1; c < n; ++c) b[size_t(i)] -= A[size_t(i * n + c)] * b[size_t(c)];
    b[size_t(i)] /= A[size_t(i * n + i)];
  }
  return b;
}

// The least-squares refit of the kept columns: per row, H_KK w_K = (H w)_K.
std::vector<double> refit(const Problem& p, const std::vector<int64_t>& keep) {
  const int64_t k = int64_t(keep.size());
  std::vector<double> A(size_t(k * k)), out(size_t(p.rows * p.cols), 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      A[size_t(i * k + j)] = p.H[size_t(keep[size_t(i)] * p.cols + keep[size_t(j)])];
  for (int64_t r = 0; r < p.rows; ++r) {
    std::vector<double> rhs(size_t(k), 0.0);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t c = 0; c < p.cols; ++c)
        rhs[size_t(i)] += p.H[size_t(keep[size_t(i)] * p.cols + c)] * p.w[size_t(r * p.cols + c)];
    const std::vector<double> x = solve(A, rhs, k);
    for (int64_t i = 0; i < k; ++i) out[size_t(r * p.cols + keep[size_t(i)])] = x[size_t(i)];
  }
  return out;
}

// tr((W − W')·H·(W − W')ᵀ).
double loss(const Problem& p, const std::vector<double>& w2) {
  double s = 0;
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t i = 0; i < p.cols; ++i)
      for (int64_t j = 0; j < p.cols; ++j)
        s += (p.w[size_t(r * p.cols + i)] - w2[size_t(r * p.cols + i)]) *
             p.H[size_t(i * p.cols + j)] *
             (p.w[size_t(r * p.cols + j)] - w2[size_t(r * p.cols + j)]);
  return s;
}

TEST(ChannelObs, LeavesTheLeastSquaresRefitOfTheGreedyBruteForceChoice) {
  for (const int64_t b : {1, 3}) {
    SCOPED_TRACE(b);
    const Problem p = make_problem(5, 4 * b, 64, 0.01, 7 + uint32_t(b));
    ChannelObsOptions o;
    o.sparsity = 0.5, o.channel_columns = b;  // 2 of 4 channels
    const CompressedTensor t =
        prune_channels_obs(p.w.data(), p.rows, p.cols, p.stats, o, nullptr, "w");
    const Tensor got = t.dequantize();
    // Brute force, greedy: at each step the channel whose removal (with refit) loses least.
    std::vector<int64_t> kept_channels = {0, 1, 2, 3};
    for (int step = 0; step < 2; ++step) {
      double best = INFINITY;
      size_t pick = 0;
      for (size_t k = 0; k < kept_channels.size(); ++k) {
        std::vector<int64_t> keep;
        for (size_t m = 0; m < kept_channels.size(); ++m)
          if (m != k)
            for (int64_t i = 0; i < b; ++i) keep.push_back(kept_channels[m] * b + i);
        const double l = loss(p, refit(p, keep));
        if (l < best) best = l, pick = k;
      }
      kept_channels.erase(kept_channels.begin() + int64_t(pick));
    }
    std::vector<int64_t> keep;
    for (int64_t c : kept_channels)
      for (int64_t i = 0; i < b; ++i) keep.push_back(c * b + i);
    const std::vector<double> want = refit(p, keep);
    for (int64_t i = 0; i < p.rows * p.cols; ++i)
      EXPECT_NEAR(got.as<float>()[i], want[size_t(i)], 1e-4 * (1 + std::abs(want[size_t(i)])))
          << "weight " << i;
    // The removed channels are masked out and exactly zero.
    for (int64_t r = 0; r < p.rows; ++r)
      for (int64_t c = 0; c < p.cols; ++c) {
        const bool kept = std::find(keep.begin(), keep.end(), c) != keep.end();
        EXPECT_EQ(t.kept(r * p.cols + c), kept);
        if (!kept) EXPECT_EQ(got.as<float>()[r * p.cols + c], 0.0f);
      }
  }
}

TEST(ChannelObs, WithoutCompensationTheKeptWeightsStayAndTheLossIsLarger) {
  const Problem p = make_problem(6, 8, 64, 0.01, 3);
  ChannelObsOptions o;
  o.sparsity = 0.5, o.channel_columns = 2;
  ChannelObsOptions plain = o;
  plain.compensate = false;
  const Tensor a = prune_channels_obs(p.w.data(), p.rows, p.cols, p.stats, o).dequantize();
  const Tensor z = prune_channels_obs(p.w.data(), p.rows, p.cols, p.stats, plain).dequantize();
  std::vector<double> wa(a.as<float>(), a.as<float>() + a.numel()),
      wz(z.as<float>(), z.as<float>() + z.numel());
  for (int64_t i = 0; i < z.numel(); ++i)
    if (wz[size_t(i)] != 0) EXPECT_EQ(wz[size_t(i)], p.w[size_t(i)]);
  EXPECT_LT(loss(p, wa), loss(p, wz));
}

TEST(ChannelObs, RefusesChannelsThatDoNotDivideTheColumns) {
  const Problem p = make_problem(2, 6, 16, 0.01, 1);
  ChannelObsOptions o;
  o.channel_columns = 4;
  try {
    prune_channels_obs(p.w.data(), p.rows, p.cols, p.stats, o, nullptr, "layer.w");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer.w"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("do not divide"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mcw
