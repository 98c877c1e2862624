#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/compress/gptq.h"
#include "engine/compress/linalg_f64.h"
#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "quant_test_util.h"

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
std::vector<float> slow_obq(const std::vector<float>& w0, int64_t rows, int64_t cols,
                            const LayerStats& st, const GptqOptions& o) {
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

  auto grid_of = [&](int64_t r, const std::vector<int64_t>& members) {
    std::vector<float> v;
    for (int64_t c : members) v.push_back(float(w[size_t(r * cols + c)]));
    return affine_params(v.data(), int64_t(v.size()), 1, o.bits, o.symmetric);
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
  for (int64_t t = 0; t < cols; ++t) {
    const int64_t c = order[size_t(t)], nf = int64_t(free_cols.size());
    std::vector<double> hf(size_t(nf * nf));
    for (int64_t i = 0; i < nf; ++i)
      for (int64_t j = 0; j < nf; ++j)
        hf[size_t(i * nf + j)] = h[size_t(free_cols[size_t(i)] * cols + free_cols[size_t(j)])];
    const std::vector<double> hinv = invert(hf, nf);  // free_cols[0] == c
    for (int64_t r = 0; r < rows; ++r) {
      if (!static_groups && t % gs == 0) {
        std::vector<int64_t> members(order.begin() + t, order.begin() + t + gs);
        grid[size_t(r * (cols / gs) + t / gs)] = grid_of(r, members);
      }
      const AffineParams p = grid[size_t(r * (cols / gs) + (static_groups ? c / gs : t / gs))];
      const float q = affine_round(float(w[size_t(r * cols + c)]), p, o.bits);
      out[size_t(r * cols + c)] = q;
      const double err = (w[size_t(r * cols + c)] - q) / hinv[0];
      for (int64_t j = 0; j < nf; ++j)
        w[size_t(r * cols + free_cols[size_t(j)])] -= err * hinv[size_t(j)];
    }
    free_cols.erase(free_cols.begin());
  }
  return out;
}

}  // namespace

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
