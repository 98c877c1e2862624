// The symmetric-matrix kernels (engine/kernels/gram.h) against what they replace and a
// naive f64 computation, on every SIMD path the CPU has. Shapes straddle the 256-wide
// tiles and the 256-row chunks.
#include <gtest/gtest.h>

#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

#include "engine/kernels/gemm.h"
#include "engine/kernels/gram.h"
#include "simd_level_test.h"

using namespace mcw;

namespace {

class GramLevels : public test::SimdLevelTest {};

// accumulate_gram against a naive f64 XᵀX, and bit for bit against what it replaced:
// matmul_at over 256-row chunks of X, each chunk's full f32 product added to G in f64.
// Shapes straddle the 256-wide tiles and the 256-row chunks; X has row padding, and G
// starts from earlier sums.
TEST_P(GramLevels, AccumulateMatchesNaiveAndChunkedMatmulAt) {
  for (auto [n, c] : {std::pair<int64_t, int64_t>{1, 1}, {7, 3}, {300, 257}, {513, 520},
                      {256, 600}}) {
    std::mt19937 rng(uint32_t(n * 31 + c));
    const int64_t ldx = c + 3;
    const std::vector<float> X = test::uniform_floats(size_t(n * ldx), rng);
    std::vector<double> G(size_t(c * c));
    for (int64_t i = 0; i < c; ++i)  // a symmetric start, as earlier calls leave it
      for (int64_t j = 0; j <= i; ++j) G[size_t(i * c + j)] = G[size_t(j * c + i)] = 0.25 * double(i + j);
    std::vector<double> chunked = G, naive = G;
    accumulate_gram(X.data(), ldx, n, c, G.data());

    std::vector<float> dense(size_t(n * c)), part(size_t(c * c));
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(&dense[size_t(r * c)], &X[size_t(r * ldx)], size_t(c) * sizeof(float));
    for (int64_t r0 = 0; r0 < n; r0 += 256) {
      matmul_at(&dense[size_t(r0 * c)], &dense[size_t(r0 * c)], part.data(), c, c,
                std::min<int64_t>(256, n - r0));
      for (size_t i = 0; i < part.size(); ++i) chunked[i] += double(part[i]);
    }
    for (int64_t i = 0; i < c; ++i)
      for (int64_t j = 0; j < c; ++j) {
        double sum = 0;
        for (int64_t r = 0; r < n; ++r)
          sum += double(X[size_t(r * ldx + i)]) * double(X[size_t(r * ldx + j)]);
        naive[size_t(i * c + j)] += sum;
      }
    for (size_t i = 0; i < G.size(); ++i) {
      ASSERT_EQ(G[i], chunked[i]) << "n=" << n << " c=" << c << " at " << i;
      ASSERT_NEAR(G[i], naive[i], 1e-5 * (1.0 + std::fabs(naive[i]))) << "n=" << n << " c=" << c;
    }
  }
  double g = 1.0;
  accumulate_gram(nullptr, 1, 0, 1, &g);  // no rows: G unchanged
  EXPECT_EQ(g, 1.0);
  float x = 1.0f;
  EXPECT_THROW(accumulate_gram(&x, 1, 1, 2, &g), std::invalid_argument);  // ldx < c
}

// tr(M·H·Mᵀ) against the naive f64 sum over rows, for an H = XᵀX (PSD, as the callers'
// are) and for an indefinite symmetric H; the lower triangle of H is never read; the
// result does not depend on the number of threads.
TEST_P(GramLevels, WeightedSquareNormMatchesNaive) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 5}, {300, 257}, {70, 520},
                            {513, 256}}) {
    std::mt19937 rng(uint32_t(rows * 7 + cols));
    const std::vector<float> M = test::uniform_floats(size_t(rows * cols), rng);
    for (bool psd : {true, false}) {
      std::vector<double> H(size_t(cols * cols));
      if (psd) {
        const std::vector<float> X = test::uniform_floats(size_t(64 * cols), rng);
        accumulate_gram(X.data(), cols, 64, cols, H.data());
      } else {
        for (int64_t i = 0; i < cols; ++i)
          for (int64_t j = i; j < cols; ++j)
            H[size_t(i * cols + j)] = H[size_t(j * cols + i)] = double(rng() % 2001) / 1000.0 - 1.0;
      }
      double naive = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < cols; ++i)
          for (int64_t j = 0; j < cols; ++j)
            naive += double(M[size_t(r * cols + i)]) * double(float(H[size_t(i * cols + j)])) *
                     double(M[size_t(r * cols + j)]);
      std::vector<double> upper = H;  // garbage below the diagonal must not matter
      for (int64_t i = 1; i < cols; ++i)
        for (int64_t j = 0; j < i; ++j) upper[size_t(i * cols + j)] = 1e30;
      const double got = weighted_square_norm(M.data(), rows, cols, upper.data());
      double scale = 0;  // Σ |m_i|·|H_ij|·|m_j|, the size rounding is relative to
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < cols; ++i)
          for (int64_t j = 0; j < cols; ++j)
            scale += std::fabs(double(M[size_t(r * cols + i)]) * H[size_t(i * cols + j)] *
                               double(M[size_t(r * cols + j)]));
      EXPECT_NEAR(got, naive, 1e-6 * scale) << rows << "x" << cols << (psd ? " psd" : "");
      double one = 0;
      tbb::task_arena(1).execute([&] { one = weighted_square_norm(M.data(), rows, cols, upper.data()); });
      EXPECT_EQ(one, got);
    }
  }
  EXPECT_EQ(weighted_square_norm(nullptr, 0, 5, nullptr), 0.0);
  EXPECT_THROW(weighted_square_norm(nullptr, -1, 5, nullptr), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(Gram, GramLevels,
                         test::all_simd_levels(), test::simd_level_test_name);

}  // namespace
