#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/compress/magnitude.h"
#include "engine/compress/nm_pattern.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/compress/wanda.h"
#include "engine/compress/algorithm.h"
#include "engine/recipe/recipe.h"
#include "engine/core/error.h"
#include "prune_test_util.h"

using namespace mcw;

TEST(Wanda, KeepsLargestScorePerRow) {
  const int64_t rows = 10, cols = 48, n = 200;
  const Tensor w = prune_test::weight(rows, cols, 11);
  const auto x = prune_test::activations(n, cols, 11, 8.0f);
  const auto st = prune_test::stats_of(x, cols);
  const auto c = wanda_prune(w, st, {{0.5, 0, 0}});
  const auto v = w.to_f32();
  for (int64_t r = 0; r < rows; ++r) {
    int kept = 0;
    double max_pruned = 0, min_kept = INFINITY;
    for (int64_t j = 0; j < cols; ++j) {
      double norm2 = 0;  // ‖X_j‖² straight from the activations
      for (int64_t t = 0; t < n; ++t)
        norm2 += double(x[size_t(t * cols + j)]) * x[size_t(t * cols + j)];
      const double score = std::fabs(v[size_t(r * cols + j)]) * std::sqrt(norm2);
      if (c.kept(r * cols + j))
        ++kept, min_kept = std::min(min_kept, score);
      else
        max_pruned = std::max(max_pruned, score);
    }
    EXPECT_EQ(kept, cols / 2);
    EXPECT_LE(max_pruned, min_kept);
  }
  const auto d = c.dequantize().to_f32();
  for (size_t i = 0; i < d.size(); ++i) EXPECT_EQ(d[i], c.kept(int64_t(i)) ? v[i] : 0.0f);
}

TEST(Wanda, LayerScopeKeepsLargestScoresOfTheMatrix) {
  const int64_t rows = 12, cols = 40, n = 150;
  const Tensor w = prune_test::weight(rows, cols, 3);
  const auto x = prune_test::activations(n, cols, 3, 8.0f);
  const auto st = prune_test::stats_of(x, cols);
  const auto c = wanda_prune(w, st, {{0.3, 0, 0}, PruneScope::PerLayer});
  const auto v = w.to_f32();
  std::vector<double> score(v.size());
  for (int64_t j = 0; j < cols; ++j) {
    double norm2 = 0;
    for (int64_t t = 0; t < n; ++t) norm2 += double(x[size_t(t * cols + j)]) * x[size_t(t * cols + j)];
    for (int64_t r = 0; r < rows; ++r)
      score[size_t(r * cols + j)] = std::fabs(v[size_t(r * cols + j)]) * std::sqrt(norm2);
  }
  int64_t kept = 0;
  double max_pruned = 0, min_kept = INFINITY;
  for (size_t i = 0; i < score.size(); ++i)
    if (c.kept(int64_t(i)))
      ++kept, min_kept = std::min(min_kept, score[i]);
    else
      max_pruned = std::max(max_pruned, score[i]);
  EXPECT_EQ(kept, rows * cols - std::llround(0.3 * double(rows * cols)));
  EXPECT_LE(max_pruned, min_kept);
}

// Scaling input channel j of X by s and column j of W by 1/s leaves W·X unchanged, as a
// model does when a norm weight grows and the next layer's column shrinks. Wanda's score
// |W_ij|·‖X_j‖ is unchanged by it, so its mask is too; magnitude's is not: this is the
// mechanism behind "Wanda beats magnitude" on models with outlier features.
TEST(Wanda, MaskIsInvariantToInputChannelRescaling) {
  const int64_t rows = 16, cols = 64, n = 200;
  const Tensor w = prune_test::weight(rows, cols, 9);
  const auto x = prune_test::activations(n, cols, 9, 1.0f);
  std::vector<float> ws = w.to_f32(), xs = x;
  for (int64_t j = 0; j < cols; j += 8) {  // every 8th channel becomes an outlier feature
    for (int64_t r = 0; r < rows; ++r) ws[size_t(r * cols + j)] /= 32.0f;
    for (int64_t t = 0; t < n; ++t) xs[size_t(t * cols + j)] *= 32.0f;
  }
  const Tensor w2 = Tensor::from_f32(ws, {rows, cols}, "w");
  const auto st = prune_test::stats_of(x, cols), st2 = prune_test::stats_of(xs, cols);
  for (PruneScope scope : {PruneScope::PerRow, PruneScope::PerLayer}) {
    const auto a = wanda_prune(w, st, {{0.5, 0, 0}, scope});
    const auto b = wanda_prune(w2, st2, {{0.5, 0, 0}, scope});
    int64_t differ = 0;
    for (int64_t i = 0; i < rows * cols; ++i) differ += a.kept(i) != b.kept(i);
    EXPECT_EQ(differ, 0);  // scaling by a power of two is exact: the scores are identical
  }
  const auto m = magnitude_prune(w, {{0.5, 0, 0}}), m2 = magnitude_prune(w2, {{0.5, 0, 0}});
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_FALSE(m2.kept(r * cols)) << "magnitude drops every weight reading an outlier channel";
  const double e_wanda = prune_test::output_error(w2, wanda_prune(w2, st2, {{0.5, 0, 0}}), xs, cols);
  EXPECT_NEAR(e_wanda, prune_test::output_error(w, wanda_prune(w, st, {{0.5, 0, 0}}), x, cols),
              1e-9 * e_wanda);
  EXPECT_LT(e_wanda, prune_test::output_error(w2, m2, xs, cols));
}

TEST(Wanda, BeatsMagnitudeWithOutlierChannels) {
  const int64_t rows = 32, cols = 96, n = 384;
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    const Tensor w = prune_test::weight(rows, cols, seed);
    const auto x = prune_test::activations(n, cols, seed, 10.0f);
    const auto st = prune_test::stats_of(x, cols);
    for (SparsityTarget t : {SparsityTarget{0.5, 0, 0}, SparsityTarget{0.5, 2, 4}}) {
      const double e_wanda = prune_test::output_error(w, wanda_prune(w, st, {t}), x, cols);
      const double e_mag = prune_test::output_error(w, magnitude_prune(w, {t}), x, cols);
      EXPECT_LT(e_wanda, e_mag) << "seed " << seed << " n:m " << t.nm_n;
    }
  }
}

TEST(Wanda, NmPatternAndTwoFourCostsMore) {
  const int64_t rows = 24, cols = 64, n = 256;
  for (uint32_t seed = 5; seed <= 7; ++seed) {
    const Tensor w = prune_test::weight(rows, cols, seed);
    const auto x = prune_test::activations(n, cols, seed, 6.0f);
    const auto st = prune_test::stats_of(x, cols);
    const auto c24 = wanda_prune(w, st, {{0, 2, 4}});
    const auto c48 = wanda_prune(w, st, {{0, 4, 8}});
    EXPECT_TRUE(mask_satisfies_nm(c24.mask, rows, cols, 2, 4));
    EXPECT_TRUE(mask_satisfies_nm(c48.mask, rows, cols, 4, 8));
    EXPECT_EQ(c24.describe(), "f16, 2:4 sparse");
    const double e24 = prune_test::output_error(w, c24, x, cols);
    const double e48 = prune_test::output_error(w, c48, x, cols);
    const double e50 = prune_test::output_error(w, wanda_prune(w, st, {{0.5, 0, 0}}), x, cols);
    EXPECT_GE(e24, e50) << seed;
    EXPECT_GE(e24, e48) << seed;  // 4:8 is the looser pattern
  }
}

TEST(Wanda, BadInputsThrow) {
  const Tensor w = prune_test::weight(4, 16, 1);
  const auto st = prune_test::stats_of(prune_test::activations(8, 16, 1, 1.0f), 16);
  EXPECT_THROW(wanda_prune(w, st, {{1.5, 0, 0}}), Error);
  EXPECT_THROW(wanda_prune(w, st, {{0.5, 2, 3}}), Error);
  const auto other = prune_test::stats_of(prune_test::activations(8, 8, 1, 1.0f), 8);
  try {
    wanda_prune(w, other, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "blk.0.w: calibration statistics are for 8 input channels, the weight has 16");
  }
  LayerStats broken = st;
  broken.sq_norm.pop_back();
  EXPECT_THROW(wanda_prune(w, broken, {}), Error);
  broken = st;
  broken.xtx[5] = NAN;
  EXPECT_THROW(wanda_prune(w, broken, {}), Error);
}

TEST(Wanda, LayerStatsAccumulateMatchesNaive) {
  const int64_t cols = 20;
  const auto x = prune_test::activations(300, cols, 9, 3.0f);
  LayerStats s = make_layer_stats(cols);
  accumulate(s, x.data(), 100);
  accumulate(s, x.data() + 100 * cols, 200);
  EXPECT_EQ(s.samples, 300);
  for (int64_t i = 0; i < cols; ++i) {
    double sq = 0;
    float mx = 0;
    for (int64_t t = 0; t < 300; ++t) {
      const float v = x[size_t(t * cols + i)];
      sq += double(v) * v, mx = std::max(mx, std::fabs(v));
    }
    EXPECT_NEAR(s.sq_norm[size_t(i)], sq, 1e-9 * sq);
    EXPECT_EQ(s.max_abs[size_t(i)], mx);
    for (int64_t j = 0; j < cols; ++j) {
      double h = 0;
      for (int64_t t = 0; t < 300; ++t)
        h += double(x[size_t(t * cols + i)]) * x[size_t(t * cols + j)];
      EXPECT_NEAR(s.xtx[size_t(i * cols + j)], h, 1e-5 * sq + 1e-4);
    }
  }
  LayerStats empty{};
  EXPECT_THROW(accumulate(empty, x.data(), 1), Error);
}

// Wanda reads Σx² per input channel only: the stage gathers no XᵀX (which costs as much as
// GPTQ's own work), and the result is the same as with it.
TEST(Wanda, NeedsOnlyInputNormsNotTheGram) {
  EXPECT_EQ(calibration_need("wanda", {}), CalibrationNeed::InputNorms);
  EXPECT_EQ(calibration_need("kmeans", {}), CalibrationNeed::InputNorms);
  EXPECT_EQ(calibration_need("gptq", {}), CalibrationNeed::Gram);
  const int64_t rows = 6, cols = 16, n = 40;
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(size_t(n * cols)), wv(size_t(rows * cols));
  for (float& v : x) v = d(rng);
  for (float& v : wv) v = d(rng);
  LayerStats full = make_layer_stats(cols), norms = make_layer_stats(cols, false);
  accumulate(full, x.data(), n);
  accumulate(norms, x.data(), n);
  EXPECT_TRUE(norms.xtx.empty());
  EXPECT_EQ(norms.sq_norm, full.sq_norm);
  for (int64_t j = 0; j < cols; ++j) {
    double s = 0;
    for (int64_t t = 0; t < n; ++t) s += double(x[size_t(t * cols + j)]) * x[size_t(t * cols + j)];
    EXPECT_NEAR(norms.sq_norm[size_t(j)], s, 1e-9 * s);
  }
  EXPECT_THROW(check_layer_stats(norms, cols, "l"), Error);  // a method that needs XᵀX
  EXPECT_NO_THROW(check_layer_stats(norms, cols, "l", false));
  const Tensor w = Tensor::from_f32(wv, {rows, cols}, "l");
  const CompressedTensor a = wanda_prune(w, full, {SparsityTarget{0.5}, PruneScope::PerRow});
  const CompressedTensor b = wanda_prune(w, norms, {SparsityTarget{0.5}, PruneScope::PerRow});
  EXPECT_EQ(a.mask, b.mask);
  EXPECT_EQ(a.dequantize().to_f32(), b.dequantize().to_f32());
}
