// f32 GEMM/GEMV kernels against a deliberately naive triple loop in double precision, on
// every SIMD path the CPU has, over shapes chosen to hit every edge of the register
// tiles, cache blocks and thread tiles (m,n,k around 1, the tile sizes, and past kc=256).
#include <gtest/gtest.h>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "engine/kernels/gemm.h"
#include "simd_level_test.h"

using namespace mcw;

namespace {

enum class Layout { Wt, Plain, At };

// Element accessors of the logical product C[m,n] = A[m,k]·B[k,n] for each layout, given
// the stored (row-major, strided) arrays.
struct Problem {
  Layout layout;
  int64_t m, n, k;
  int64_t lda, ldb, ldc;  // leading dimensions of the stored arrays
  std::vector<float> a, b, c, bias;

  double A(int64_t i, int64_t p) const {
    return layout == Layout::At ? a[p * lda + i] : a[i * lda + p];
  }
  double B(int64_t p, int64_t j) const {
    return layout == Layout::Wt ? b[j * ldb + p] : b[p * ldb + j];
  }
};

// Stored arrays with `pad` spare elements per row; the spare ones of C hold a sentinel.
Problem make_problem(Layout layout, int64_t m, int64_t n, int64_t k, bool with_bias,
                     int64_t pad, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem pr{layout, m, n, k, 0, 0, 0, {}, {}, {}, {}};
  const int64_t a_rows = layout == Layout::At ? k : m, a_cols = layout == Layout::At ? m : k;
  const int64_t b_rows = layout == Layout::Wt ? n : k, b_cols = layout == Layout::Wt ? k : n;
  pr.lda = a_cols + pad;
  pr.ldb = b_cols + pad;
  pr.ldc = n + pad;
  pr.a = test::uniform_floats(size_t(a_rows * pr.lda), rng);
  pr.b = test::uniform_floats(size_t(b_rows * pr.ldb), rng);
  pr.c = test::uniform_floats(size_t(m * pr.ldc), rng);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n; j < pr.ldc; ++j) pr.c[i * pr.ldc + j] = 12345.0f;
  if (with_bias) pr.bias = test::uniform_floats(size_t(n), rng);
  return pr;
}

void run(Problem& pr, bool accumulate, bool strided) {
  const float* bias = pr.bias.empty() ? nullptr : pr.bias.data();
  float* c = pr.c.data();
  switch (pr.layout) {
    case Layout::Wt:
      if (strided)
        matmul_wt_strided(pr.a.data(), pr.lda, pr.b.data(), pr.ldb, c, pr.ldc, pr.m, pr.n, pr.k,
                          bias, accumulate);
      else
        matmul_wt(pr.a.data(), pr.b.data(), c, pr.m, pr.n, pr.k, bias, accumulate);
      break;
    case Layout::Plain:
      if (strided)
        matmul_strided(pr.a.data(), pr.lda, pr.b.data(), pr.ldb, c, pr.ldc, pr.m, pr.n, pr.k,
                       accumulate);
      else
        matmul(pr.a.data(), pr.b.data(), c, pr.m, pr.n, pr.k, accumulate);
      break;
    case Layout::At:
      if (strided)
        matmul_at_strided(pr.a.data(), pr.lda, pr.b.data(), pr.ldb, c, pr.ldc, pr.m, pr.n,
                          pr.k, accumulate);
      else
        matmul_at(pr.a.data(), pr.b.data(), c, pr.m, pr.n, pr.k, accumulate);
      break;
  }
}

// Runs one product and compares every output with the double-precision triple loop. The
// bound scales with the sum of |terms|, so it is relative to the size of the inputs.
void check(Layout layout, int64_t m, int64_t n, int64_t k, bool with_bias, bool accumulate,
           int64_t pad = 0) {
  SCOPED_TRACE(testing::Message() << "layout=" << int(layout) << " m=" << m << " n=" << n
                                  << " k=" << k << " bias=" << with_bias
                                  << " accumulate=" << accumulate << " pad=" << pad);
  Problem pr = make_problem(layout, m, n, k, with_bias, pad, uint32_t(m * 7919 + n * 31 + k));
  const std::vector<float> before = pr.c;
  run(pr, accumulate, pad > 0);
  const double tol = 1e-5 * std::sqrt(double(k) + 1.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, scale = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double t = pr.A(i, p) * pr.B(p, j);
        ref += t;
        scale += std::fabs(t);
      }
      if (with_bias) ref += pr.bias[j], scale += std::fabs(pr.bias[j]);
      const double old = before[i * pr.ldc + j];
      if (accumulate) ref += old, scale += std::fabs(old);
      ASSERT_NEAR(pr.c[i * pr.ldc + j], ref, tol * (scale + 1e-30)) << "at " << i << "," << j;
    }
    for (int64_t j = n; j < pr.ldc; ++j)
      ASSERT_EQ(pr.c[i * pr.ldc + j], 12345.0f) << "padding written at " << i << "," << j;
  }
}

const int64_t kDims[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 65, 127, 200};
constexpr int kNumDims = sizeof(kDims) / sizeof(kDims[0]);

// Every m from the list, each with three (n, k) partners picked by co-prime strides, plus
// shapes straddling the small-m switch (8/9), the tiles and the depth block (kc = 256).
std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes() {
  std::vector<std::tuple<int64_t, int64_t, int64_t>> s;
  for (int i = 0; i < kNumDims; ++i)
    for (int t = 0; t < 3; ++t)
      s.emplace_back(kDims[i], kDims[(i * 5 + t * 4 + 3) % kNumDims],
                     kDims[(i * 7 + t * 3 + 1) % kNumDims]);
  for (auto shape : {std::tuple<int64_t, int64_t, int64_t>{8, 33, 65}, {9, 33, 65},
                     {12, 32, 257}, {13, 65, 300}, {25, 273, 31}, {97, 17, 513},
                     {200, 300, 260}, {1, 600, 777}, {5, 7, 1000}})
    s.push_back(shape);
  return s;
}

class GemmLevels : public test::SimdLevelTest {};

TEST_P(GemmLevels, MatmulWtMatchesNaive) {
  for (auto [m, n, k] : shapes())
    for (bool bias : {false, true})
      for (bool acc : {false, true}) check(Layout::Wt, m, n, k, bias, acc);
}

TEST_P(GemmLevels, MatmulMatchesNaive) {
  for (auto [m, n, k] : shapes())
    for (bool acc : {false, true}) check(Layout::Plain, m, n, k, false, acc);
}

TEST_P(GemmLevels, MatmulAtMatchesNaive) {
  for (auto [m, n, k] : shapes())
    for (bool acc : {false, true}) check(Layout::At, m, n, k, false, acc);
}

TEST_P(GemmLevels, StridedVariantsLeavePaddingAlone) {
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 17, 33}, {3, 31, 7},
                         {16, 65, 64}, {33, 33, 300}, {65, 127, 17}})
    for (Layout layout : {Layout::Wt, Layout::Plain, Layout::At})
      check(layout, m, n, k, layout == Layout::Wt, true, 5);
}

// Decode: one token against long rows, and the single-output extreme.
TEST_P(GemmLevels, GemvLongRows) {
  check(Layout::Wt, 1, 37, 4096, true, false);
  check(Layout::Wt, 1, 1, 4096, false, false);
  check(Layout::Wt, 1, 1, 4096, true, true);
  check(Layout::Plain, 1, 1, 4096, false, false);
  check(Layout::At, 1, 1, 4096, false, true);
  check(Layout::Plain, 1, 100, 4096, false, false);
}

// m = 0 or n = 0 must neither crash nor write; k = 0 leaves only bias (or the old values).
TEST_P(GemmLevels, ZeroSizes) {
  std::vector<float> out(64, 7.0f), in(64, 1.0f), bias(64, 0.5f);
  for (auto [m, n] : {std::pair<int64_t, int64_t>{0, 5}, {5, 0}, {0, 0}}) {
    matmul_wt(nullptr, nullptr, out.data(), m, n, 9, bias.data(), false);
    matmul(nullptr, nullptr, out.data(), m, n, 9);
    matmul_at(nullptr, nullptr, out.data(), m, n, 9);
    matmul_wt(in.data(), in.data(), out.data(), m, n, 0);
    for (float v : out) ASSERT_EQ(v, 7.0f);
  }
  matmul_wt(nullptr, nullptr, out.data(), 2, 3, 0, bias.data(), false);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], 0.5f);
  matmul_wt(nullptr, nullptr, out.data(), 2, 3, 0, bias.data(), true);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], 1.0f);
  matmul(nullptr, nullptr, out.data(), 2, 3, 0, true);
  matmul_at(nullptr, nullptr, out.data(), 2, 3, 0, true);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], 1.0f);
  matmul(nullptr, nullptr, out.data(), 2, 3, 0, false);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], 0.0f);
  EXPECT_EQ(out[6], 7.0f);
}

// Each output's summation order does not depend on how the work is split, so a thread
// limit imposed by the caller changes nothing, bit for bit.
TEST_P(GemmLevels, ResultIndependentOfThreadLimit) {
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1000, 700}, {6, 300, 300},
                         {150, 333, 600}}) {
    Problem pr = make_problem(Layout::Wt, m, n, k, true, 0, 99);
    std::vector<float> many(size_t(m * n)), one(size_t(m * n)), plain(size_t(m * n));
    matmul_wt(pr.a.data(), pr.b.data(), many.data(), m, n, k, pr.bias.data());
    {
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 1);
      matmul_wt(pr.a.data(), pr.b.data(), one.data(), m, n, k, pr.bias.data());
    }
    tbb::task_arena(1).execute(
        [&] { matmul(pr.a.data(), pr.b.data(), plain.data(), m, std::min(n, k), k); });
    std::vector<float> plain_many(size_t(m * n));
    matmul(pr.a.data(), pr.b.data(), plain_many.data(), m, std::min(n, k), k);
    EXPECT_EQ(0, std::memcmp(many.data(), one.data(), many.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(plain.data(), plain_many.data(), plain.size() * sizeof(float)));
  }
}

INSTANTIATE_TEST_SUITE_P(Gemm, GemmLevels,
                         test::all_simd_levels(), test::simd_level_test_name);

TEST(GemmArgs, RejectsNegativeSizesAndShortStrides) {
  float x[4] = {};
  EXPECT_THROW(matmul_wt(x, x, x, -1, 1, 1), std::invalid_argument);
  EXPECT_THROW(matmul(x, x, x, 1, -1, 1), std::invalid_argument);
  EXPECT_THROW(matmul_at(x, x, x, 1, 1, -1), std::invalid_argument);
  EXPECT_THROW(matmul_wt_strided(x, 1, x, 2, x, 2, 1, 2, 2), std::invalid_argument);
  EXPECT_THROW(matmul_strided(x, 2, x, 1, x, 2, 1, 2, 2), std::invalid_argument);
  EXPECT_THROW(matmul_at_strided(x, 1, x, 2, x, 2, 2, 2, 1), std::invalid_argument);
}

}  // namespace
