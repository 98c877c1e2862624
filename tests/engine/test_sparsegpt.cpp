#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/compress/linalg.h"
#include "engine/compress/magnitude.h"
#include "engine/compress/nm_pattern.h"
#include "engine/compress/sparsegpt.h"
#include "engine/compress/wanda.h"
#include "engine/core/error.h"
#include "engine/kernels/cpu_features.h"
#include "prune_test_util.h"

using namespace mcw;

namespace {

// Gauss-Jordan inverse with partial pivoting, plain loops.
std::vector<double> inverse(std::vector<double> a, int64_t n) {
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[size_t(i * n + i)] = 1;
  for (int64_t c = 0; c < n; ++c) {
    int64_t p = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(a[size_t(r * n + c)]) > std::fabs(a[size_t(p * n + c)])) p = r;
    for (int64_t k = 0; k < n; ++k) {
      std::swap(a[size_t(c * n + k)], a[size_t(p * n + k)]);
      std::swap(inv[size_t(c * n + k)], inv[size_t(p * n + k)]);
    }
    const double d = a[size_t(c * n + c)];
    for (int64_t k = 0; k < n; ++k) a[size_t(c * n + k)] /= d, inv[size_t(c * n + k)] /= d;
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[size_t(r * n + c)];
      for (int64_t k = 0; k < n; ++k)
        a[size_t(r * n + k)] -= f * a[size_t(c * n + k)],
            inv[size_t(r * n + k)] -= f * inv[size_t(c * n + k)];
    }
  }
  return inv;
}

// Inverse of H restricted to columns [j, cols).
std::vector<double> trailing_inverse(const std::vector<double>& H, int64_t cols, int64_t j) {
  const int64_t n = cols - j;
  std::vector<double> sub(static_cast<size_t>(n * n));
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < n; ++b) sub[size_t(a * n + b)] = H[size_t((j + a) * cols + j + b)];
  return inverse(sub, n);
}

// Indices of the `count` smallest scores, by (score, index).
std::vector<int64_t> smallest(const std::vector<double>& s, int64_t count) {
  std::vector<int64_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), int64_t(0));
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
    return s[size_t(a)] < s[size_t(b)] || (s[size_t(a)] == s[size_t(b)] && a < b);
  });
  idx.resize(size_t(count));
  return idx;
}

struct Reference {
  std::vector<double> w;
  std::vector<uint8_t> keep;
};

// Textbook OBS, one column at a time: fixing column j (to 0 or its quantised value)
// updates every column not yet fixed with the freshly inverted Hessian of those columns.
// The mask is chosen as SparseGPT specifies, but from explicit inverses.
Reference slow_obs(const Tensor& wt, const LayerStats& st, const SparseGptOptions& o) {
  const int64_t rows = wt.dim(0), cols = wt.dim(1);
  const auto w0 = wt.to_f32();
  Reference ref{std::vector<double>(w0.begin(), w0.end()), std::vector<uint8_t>(w0.size(), 1)};
  auto& w = ref.w;
  std::vector<double> H = st.xtx;
  double mean = 0;
  for (int64_t j = 0; j < cols; ++j) {
    if (H[size_t(j * cols + j)] == 0) {
      H[size_t(j * cols + j)] = 1;
      for (int64_t r = 0; r < rows; ++r) w[size_t(r * cols + j)] = 0;
    }
    mean += H[size_t(j * cols + j)] / double(cols);
  }
  for (int64_t j = 0; j < cols; ++j) H[size_t(j * cols + j)] += o.damp * mean;
  const int m = o.target.nm_m, n = o.target.nm_n;
  const int64_t B = m > 0 ? std::max<int64_t>(m, o.block_size - o.block_size % m) : o.block_size;
  for (int64_t i1 = 0; i1 < cols; i1 += B) {
    const int64_t i2 = std::min(cols, i1 + B), bc = i2 - i1;
    std::vector<double> dinv(static_cast<size_t>(cols));  // [H_{j..}^-1]_jj
    for (int64_t j = i1; j < i2; ++j) dinv[size_t(j)] = trailing_inverse(H, cols, j)[0];
    if (m == 0) {
      std::vector<double> s(static_cast<size_t>(rows * bc));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < bc; ++j)
          s[size_t(r * bc + j)] =
              w[size_t(r * cols + i1 + j)] * w[size_t(r * cols + i1 + j)] / dinv[size_t(i1 + j)];
      const int64_t k = std::llround(o.target.sparsity * double(rows * i2)) -
                        std::llround(o.target.sparsity * double(rows * i1));
      for (int64_t i : smallest(s, k)) ref.keep[size_t((i / bc) * cols + i1 + i % bc)] = 0;
    }
    for (int64_t j = i1; j < i2; ++j) {
      const auto hinv = trailing_inverse(H, cols, j);
      for (int64_t r = 0; r < rows; ++r) {
        if (m > 0 && j % m == 0) {
          std::vector<double> s(static_cast<size_t>(m));
          for (int t = 0; t < m; ++t)
            s[size_t(t)] =
                w[size_t(r * cols + j + t)] * w[size_t(r * cols + j + t)] / dinv[size_t(j + t)];
          for (int64_t t : smallest(s, m - n)) ref.keep[size_t(r * cols + j + t)] = 0;
        }
        double& wj = w[size_t(r * cols + j)];
        double q = 0;
        if (ref.keep[size_t(r * cols + j)])
          q = o.quantize ? double(o.quantize(r, j, float(wj))) : wj;
        const double delta = (wj - q) / hinv[0];
        for (int64_t t = j + 1; t < cols; ++t)
          w[size_t(r * cols + t)] -= delta * hinv[size_t(t - j)];
        wj = q;
      }
    }
  }
  return ref;
}

void expect_matches_reference(const Tensor& w, const LayerStats& st, const SparseGptOptions& o) {
  const auto c = sparsegpt_prune(w, st, o);
  const auto ref = slow_obs(w, st, o);
  const auto got = c.dequantize().to_f32();
  double max_w = 0;
  for (double v : ref.w) max_w = std::max(max_w, std::fabs(v));
  int mask_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    mask_diff += c.kept(int64_t(i)) != bool(ref.keep[i]);
    EXPECT_NEAR(got[i], ref.w[i], 2e-5 * max_w) << i;
  }
  EXPECT_EQ(mask_diff, 0);
}

struct Layer {
  Tensor w;
  std::vector<float> x;
  LayerStats st;
};

Layer layer(int64_t rows, int64_t cols, int64_t n, uint32_t seed, float outlier) {
  Layer l{
      prune_test::weight(rows, cols, seed), prune_test::activations(n, cols, seed, outlier), {}};
  l.st = prune_test::stats_of(l.x, cols);
  return l;
}

}  // namespace

TEST(SparseGPT, InverseCholeskyFactor) {
  for (int64_t n : {5, 130, 300}) {  // one block, a ragged second block, several blocks
    const auto x = prune_test::activations(2 * n, n, 3, 4.0f);
    auto H = prune_test::stats_of(x, n).xtx;
    for (int64_t j = 0; j < n; ++j) H[size_t(j * n + j)] += 1.0;
    std::vector<double> U;
    ASSERT_TRUE(inverse_cholesky_upper(H.data(), n, U));
    // U upper triangular, and UᵀU·H = I.
    std::vector<double> utu(static_cast<size_t>(n * n), 0.0), prod(static_cast<size_t>(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        if (j < i) {
          EXPECT_EQ(U[size_t(i * n + j)], 0.0);
        }
        for (int64_t p = 0; p <= std::min(i, j); ++p)
          utu[size_t(i * n + j)] += U[size_t(p * n + i)] * U[size_t(p * n + j)];
      }
    double worst = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < n; ++j)
          prod[size_t(i * n + j)] += utu[size_t(i * n + k)] * H[size_t(k * n + j)];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        worst = std::max(worst, std::fabs(prod[size_t(i * n + j)] - (i == j)));
    EXPECT_LT(worst, 1e-9) << n;
  }
  std::vector<double> indefinite = {1, 2, 2, 1};
  std::vector<double> U;
  EXPECT_FALSE(inverse_cholesky_upper(indefinite.data(), 2, U));
  EXPECT_FALSE(cholesky_lower(indefinite.data(), 2));
}

TEST(SparseGPT, MatchesSlowObsUnstructured) {
  for (uint32_t seed : {1u, 2u}) {
    const Layer l = layer(12, 40, 160, seed, 5.0f);
    SparseGptOptions o;
    o.target = {0.5, 0, 0};
    o.block_size = 16;  // three blocks, the last one partial: lazy updates are exercised
    expect_matches_reference(l.w, l.st, o);
    o.block_size = 128;
    o.target.sparsity = 0.3;
    expect_matches_reference(l.w, l.st, o);
  }
}

TEST(SparseGPT, MatchesSlowObsNm) {
  const Layer l = layer(10, 48, 200, 3, 5.0f);
  SparseGptOptions o;
  o.target = {0, 2, 4};
  o.block_size = 18;  // rounded down to 16 so that no 2:4 group is split
  expect_matches_reference(l.w, l.st, o);
  o.target = {0, 4, 8};
  o.block_size = 16;
  expect_matches_reference(l.w, l.st, o);
}

TEST(SparseGPT, MatchesSlowObsWithQuantiserAndDeadInput) {
  Layer l = layer(8, 32, 128, 4, 3.0f);
  for (int64_t t = 0; t < 128; ++t) l.x[size_t(t * 32 + 5)] = 0;  // input 5 never fires
  l.st = prune_test::stats_of(l.x, 32);
  SparseGptOptions o;
  o.target = {0.5, 0, 0};
  o.block_size = 8;
  o.quantize = rtn_quantizer(l.w, 4);
  expect_matches_reference(l.w, l.st, o);
  // Every kept value lies on its row's 4-bit grid; input 5 is all zero.
  const auto c = sparsegpt_prune(l.w, l.st, o);
  const auto v = l.w.to_f32(), got = c.dequantize().to_f32();
  for (int64_t r = 0; r < 8; ++r) {
    float mx = 0;
    for (int64_t j = 0; j < 32; ++j) mx = std::max(mx, std::fabs(v[size_t(r * 32 + j)]));
    const float scale = mx / 7;
    for (int64_t j = 0; j < 32; ++j) {
      const float q = got[size_t(r * 32 + j)] / scale;
      EXPECT_NEAR(q, std::nearbyint(q), 1e-4);
      EXPECT_GE(q, -8.0f);
      EXPECT_LE(q, 7.0f);
    }
    EXPECT_EQ(got[size_t(r * 32 + 5)], 0.0f);
  }
}

TEST(SparseGPT, ExactSparsityAndNmPattern) {
  const Layer l = layer(17, 64, 256, 5, 4.0f);
  for (double s : {0.25, 0.5, 0.6}) {
    SparseGptOptions o;
    o.target = {s, 0, 0};
    o.block_size = 24;
    const auto c = sparsegpt_prune(l.w, l.st, o);
    EXPECT_EQ(c.kept_count(), 17 * 64 - std::llround(s * 17 * 64)) << s;
    const auto d = c.dequantize().to_f32();
    for (size_t i = 0; i < d.size(); ++i)
      if (!c.kept(int64_t(i))) {
        EXPECT_EQ(d[i], 0.0f);
      }
  }
  for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}}) {
    SparseGptOptions o;
    o.target = {0, n, m};
    const auto c = sparsegpt_prune(l.w, l.st, o);
    EXPECT_TRUE(mask_satisfies_nm(c.mask, 17, 64, n, m));
    EXPECT_EQ(c.nm_m, m);
  }
}

TEST(SparseGPT, ErrorOrderingAgainstWandaAndMagnitude) {
  const int64_t rows = 32, cols = 96, n = 384;
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    const Layer l = layer(rows, cols, n, seed, 10.0f);
    double unstructured = 0;
    for (SparsityTarget t : {SparsityTarget{0.5, 0, 0}, SparsityTarget{0, 2, 4}}) {
      SparseGptOptions o;
      o.target = t;
      const double e_sgpt = prune_test::output_error(l.w, sparsegpt_prune(l.w, l.st, o), l.x, cols);
      const double e_wanda = prune_test::output_error(l.w, wanda_prune(l.w, l.st, {t}), l.x, cols);
      const double e_mag = prune_test::output_error(l.w, magnitude_prune(l.w, {t}), l.x, cols);
      EXPECT_LE(e_sgpt, e_wanda) << seed << " " << t.nm_m;
      EXPECT_LE(e_wanda, e_mag) << seed << " " << t.nm_m;
      if (t.is_nm()) {
        EXPECT_GE(e_sgpt, unstructured) << seed;
      } else {
        unstructured = e_sgpt;
      }
    }
  }
}

TEST(SparseGPT, BadInputsThrow) {
  const Layer l = layer(4, 16, 32, 1, 1.0f);
  const auto with = [&](auto change) {
    SparseGptOptions o;
    change(o);
    return sparsegpt_prune(l.w, l.st, o);
  };
  EXPECT_THROW(with([](SparseGptOptions& o) { o.target.sparsity = 1.5; }), Error);
  EXPECT_THROW(with([](SparseGptOptions& o) { o.target = {0, 4, 4}; }), Error);
  EXPECT_THROW(with([](SparseGptOptions& o) { o.target = {0, 2, 3}; }), Error);
  EXPECT_THROW(with([](SparseGptOptions& o) { o.block_size = 0; }), Error);
  EXPECT_THROW(with([](SparseGptOptions& o) { o.damp = -1; }), Error);
  LayerStats neg = l.st;  // not positive semi-definite, and no dampening to hide it
  neg.xtx[1] += 1e6, neg.xtx[16] += 1e6;
  EXPECT_THROW(sparsegpt_prune(l.w, neg, {{0.5, 0, 0}, 0.0, 128, {}}), Error);
  EXPECT_THROW(rtn_quantizer(l.w, 1), Error);
  CancelToken cancel;
  cancel.cancel();
  EXPECT_THROW(sparsegpt_prune(l.w, l.st, {}, &cancel), Cancelled);
}

// H = [[1, 1.02], [1.02, 1]] has eigenvalue −0.02: dampening of 1 % and 2 % of the mean
// diagonal leave it indefinite, 3 % (the third try: +0.01, +0.02) factors it. The run log's
// note says so; without a raise the note is empty.
TEST(SparseGPT, RaisesTheDampeningUntilHFactors) {
  const std::vector<float> values{1, 2, 3, 4};
  const Tensor w = Tensor::from_f32(values, {2, 2}, "l.w");
  const LayerStats st{2, {1, 1.02, 1.02, 1}, {1, 1}, {1, 1}, 1};
  SparseGptOptions o;
  o.target.sparsity = 0.5;
  SparseGptReport report;
  sparsegpt_prune(w, st, o, nullptr, &report);
  EXPECT_NEAR(report.damp, 0.03, 1e-12);
  EXPECT_EQ(dampening_note(o.damp, report.damp, report.factor).rfind("damp raised to 0.030000", 0), 0u);
  EXPECT_EQ(dampening_note(0.01, 0.01, {}), "");
}

TEST(SparseGPT, GemmF64EveryPathMatchesNaive) {
  const int64_t m = 13, n = 21, k = 300;  // edges in every direction, depth over one chunk
  const auto a = prune_test::gaussian(size_t(m * k), 1), b = prune_test::gaussian(size_t(k * n), 2);
  const std::vector<double> A(a.begin(), a.end()), B(b.begin(), b.end());
  std::vector<double> want(static_cast<size_t>(m * n), 1.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p)
        want[size_t(i * n + j)] -= A[size_t(i * k + p)] * B[size_t(p * n + j)];
  const SimdLevel saved = cpu_features().level;
  for (SimdLevel level : {SimdLevel::Generic, SimdLevel::Avx2, SimdLevel::Avx512}) {
    set_simd_level(level);
    std::vector<double> C(static_cast<size_t>(m * n), 1.0);
    gemm_sub(A.data(), k, B.data(), n, C.data(), n, m, n, k);
    for (size_t i = 0; i < C.size(); ++i) EXPECT_NEAR(C[i], want[i], 1e-11) << int(level);
  }
  set_simd_level(saved);
}

// GPTQ's act-order reorders its Hessian in place: every entry against a copy indexed
// A[perm[i]][perm[j]], for permutations with one cycle, many cycles and fixed points.
TEST(SparseGPT, PermuteSymmetricMatchesIndexing) {
  for (const int64_t n : {1, 2, 7, 130}) {
    std::vector<double> a(size_t(n * n));
    for (size_t i = 0; i < a.size(); ++i) a[i] = double(i) * 0.5 + 1;  // every entry distinct
    std::vector<std::vector<int64_t>> perms(3, std::vector<int64_t>(size_t(n)));
    std::iota(perms[0].begin(), perms[0].end(), 0);                    // identity
    for (int64_t i = 0; i < n; ++i) perms[1][size_t(i)] = (i + 1) % n;  // one n-cycle
    std::iota(perms[2].begin(), perms[2].end(), 0);
    std::reverse(perms[2].begin(), perms[2].end());  // 2-cycles and (odd n) a fixed point
    for (const auto& p : perms) {
      std::vector<double> b = a;
      permute_symmetric(b.data(), n, p);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
          ASSERT_EQ(b[size_t(i * n + j)], a[size_t(p[size_t(i)] * n + p[size_t(j)])]) << n << " " << i << " " << j;
    }
  }
}
