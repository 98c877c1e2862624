// Every backward op of engine/train against central finite differences. Each op is made a
// scalar L = Σ c·y with a fixed random cotangent c (L summed in double), so the analytic
// gradient is the op's backward with dy = c. The ops compute in f32: with inputs of order 1
// and eps = 1e-2, rounding of L is ~1e-6 (so ~1e-4 after dividing by 2·eps) and the
// truncation error eps²/6·L''' is ~1e-5 (measured worst: 5e-5); the tolerance
// 3e-4 + 1e-3·|g| covers both, while a real mistake (a missing term, a wrong index) is off
// by O(|g|) ~ 0.1..1 with these inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "engine/kernels/gemm.h"
#include "engine/kernels/ops.h"
#include "engine/train/train_ops.h"

using namespace mcw;

namespace {

using Vec = std::vector<float>;

Vec random_vec(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  Vec v(n);
  for (float& x : v) x = d(rng);
  return v;
}

double dot(const Vec& c, const Vec& y) {
  double s = 0;
  for (size_t i = 0; i < c.size(); ++i) s += double(c[i]) * y[i];
  return s;
}

// Compares `analytic` with (L(x + eps·e_i) - L(x - eps·e_i)) / 2eps for every i of `x`,
// where L = loss() reads x.
void expect_fd(Vec& x, const std::function<double()>& loss, const Vec& analytic, const char* what,
               double eps = 1e-2) {
  ASSERT_EQ(x.size(), analytic.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const float keep = x[i];
    x[i] = keep + float(eps);
    const double up = loss();
    x[i] = keep - float(eps);
    const double down = loss();
    x[i] = keep;
    const double fd = (up - down) / (2 * eps);
    const double err = std::abs(fd - analytic[i]);
    worst = std::max(worst, err);
    EXPECT_LE(err, 3e-4 + 1e-3 * std::abs(fd)) << what << "[" << i << "]: fd " << fd
                                               << " analytic " << analytic[i];
  }
  testing::Test::RecordProperty(what, std::to_string(worst));
}

}  // namespace

TEST(BackwardOps, RmsNorm) {
  std::mt19937 rng(1);
  const int64_t rows = 3, dim = 16;
  Vec x = random_vec(rows * dim, rng), w = random_vec(dim, rng, 0.3f);
  const Vec c = random_vec(rows * dim, rng);
  for (float& v : w) v += 1.0f;
  Vec y(x.size()), inv(rows);
  auto loss = [&] {
    rmsnorm_forward(x.data(), w.data(), y.data(), inv.data(), rows, dim, 1e-5);
    return dot(c, y);
  };
  loss();
  Vec dx(x.size(), 0.0f), dw(w.size(), 0.0f);
  rmsnorm_backward(x.data(), w.data(), inv.data(), c.data(), dx.data(), dw.data(), rows, dim);
  expect_fd(x, loss, dx, "dx");
  expect_fd(w, loss, dw, "dw");

  // The forward is the inference kernel's arithmetic, bit for bit.
  Vec y_ref(x.size());
  rmsnorm_rows(x.data(), w.data(), y_ref.data(), rows, dim, 1e-5);
  loss();
  EXPECT_EQ(y, y_ref);
}

TEST(BackwardOps, RopeInverseIsTheTransposedRotation) {
  std::mt19937 rng(2);
  LlamaConfig cfg;
  cfg.head_dim = 8;
  const std::vector<float> inv_freq = rope_inv_freq(cfg);
  const int64_t B = 2, T = 4, heads = 3, width = heads * 8;
  Vec x = random_vec(B * T * width, rng), c = random_vec(x.size(), rng);
  auto loss = [&] {
    Vec y = x;
    rope_rows(y.data(), B, T, heads, 8, inv_freq.data(), false);
    return dot(c, y);
  };
  Vec dx = c;
  rope_rows(dx.data(), B, T, heads, 8, inv_freq.data(), /*inverse=*/true);
  expect_fd(x, loss, dx, "dx");
}

namespace {

void check_attention(int64_t heads, int64_t kv_heads, uint32_t seed) {
  std::mt19937 rng(seed);
  const AttentionShape s{2, 5, heads, kv_heads, 4};
  const int64_t N = s.B * s.T, qw = heads * 4, kw = kv_heads * 4;
  Vec q = random_vec(N * qw, rng), k = random_vec(N * kw, rng), v = random_vec(N * kw, rng);
  const Vec c = random_vec(N * qw, rng);
  Vec probs(s.B * heads * s.T * s.T), out(N * qw);
  auto loss = [&] {
    attention_forward(s, q.data(), k.data(), v.data(), probs.data(), out.data());
    return dot(c, out);
  };
  loss();
  Vec dq(q.size(), 0.0f), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
  attention_backward(s, q.data(), k.data(), v.data(), probs.data(), c.data(), dq.data(),
                     dk.data(), dv.data());
  expect_fd(q, loss, dq, "dq");
  expect_fd(k, loss, dk, "dk");
  expect_fd(v, loss, dv, "dv");

  // Causal: probability rows sum to one over positions <= t and are zero after.
  for (int64_t row = 0; row < s.B * heads * s.T; ++row) {
    const int64_t t = row % s.T;
    double sum = 0;
    for (int64_t u = 0; u < s.T; ++u) {
      const float p = probs[size_t(row * s.T + u)];
      if (u > t) {
        EXPECT_EQ(p, 0.0f);
      }
      sum += p;
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
  // ... and a future key or value changes no earlier output.
  const Vec before = out;
  k[size_t((s.T - 1) * kw)] += 5.0f;
  v[size_t((s.T - 1) * kw)] += 5.0f;
  loss();
  for (int64_t t = 0; t < s.T - 1; ++t)
    for (int64_t i = 0; i < qw; ++i) EXPECT_EQ(out[size_t(t * qw + i)], before[size_t(t * qw + i)]);
}

}  // namespace

TEST(BackwardOps, AttentionMultiHead) { check_attention(2, 2, 3); }
TEST(BackwardOps, AttentionGroupedQuery) { check_attention(4, 2, 4); }
TEST(BackwardOps, AttentionMultiQuery) { check_attention(3, 1, 5); }

TEST(BackwardOps, SwiGlu) {
  std::mt19937 rng(6);
  const int64_t n = 40;
  Vec g = random_vec(n, rng, 2.0f), u = random_vec(n, rng), c = random_vec(n, rng);
  Vec a(n);
  auto loss = [&] {
    swiglu_forward(g.data(), u.data(), a.data(), n);
    return dot(c, a);
  };
  Vec dg(n, 0.0f), du(n, 0.0f);
  swiglu_backward(g.data(), u.data(), c.data(), dg.data(), du.data(), n);
  expect_fd(g, loss, dg, "dg");
  expect_fd(u, loss, du, "du");

  Vec ref = g;  // same values as the inference kernel
  silu_mul(ref.data(), u.data(), n);
  loss();
  EXPECT_EQ(a, ref);
}

TEST(BackwardOps, EmbeddingScatterAddsRepeatedTokens) {
  std::mt19937 rng(7);
  const int64_t V = 5, D = 3;
  const std::vector<int32_t> tokens = {2, 0, 2, 4, 2};
  Vec table = random_vec(V * D, rng), c = random_vec(tokens.size() * D, rng);
  Vec x(c.size());
  auto loss = [&] {
    embedding_forward(table.data(), tokens, x.data(), D);
    return dot(c, x);
  };
  Vec dtable(table.size(), 0.0f);
  embedding_backward(tokens, c.data(), dtable.data(), D);
  expect_fd(table, loss, dtable, "dtable");
  for (int64_t j = 0; j < D; ++j) EXPECT_EQ(dtable[size_t(1 * D + j)], 0.0f);  // unused row
}

TEST(BackwardOps, LinearWithBias) {
  std::mt19937 rng(8);
  const int64_t rows = 4, out = 5, in = 6;
  Vec x = random_vec(rows * in, rng), w = random_vec(out * in, rng), b = random_vec(out, rng);
  const Vec c = random_vec(rows * out, rng);
  Vec y(rows * out);
  auto loss = [&] {
    matmul_wt(x.data(), w.data(), y.data(), rows, out, in, b.data());
    return dot(c, y);
  };
  Vec dx(x.size(), 0.0f), dw(w.size(), 0.0f), db(b.size(), 0.0f);
  linear_backward(x.data(), w.data(), c.data(), dx.data(), dw.data(), db.data(), rows, out, in);
  expect_fd(x, loss, dx, "dx");
  expect_fd(w, loss, dw, "dw");
  expect_fd(b, loss, db, "db");
}

TEST(BackwardOps, CrossEntropy) {
  std::mt19937 rng(9);
  const int64_t rows = 3, V = 7;
  const std::vector<int32_t> targets = {6, 0, 3};
  Vec logits = random_vec(rows * V, rng, 2.0f);
  const double scale = 1.0 / double(rows);
  auto loss = [&] {
    Vec p = logits;
    return scale * cross_entropy_forward(p.data(), targets, V);
  };
  Vec probs = logits;
  const double total = cross_entropy_forward(probs.data(), targets, V);
  double ref = 0;  // -log softmax in double
  for (int64_t r = 0; r < rows; ++r) {
    double z = 0;
    for (int64_t j = 0; j < V; ++j) z += std::exp(double(logits[size_t(r * V + j)]));
    ref += std::log(z) - logits[size_t(r * V + targets[size_t(r)])];
  }
  EXPECT_NEAR(total, ref, 1e-5);
  Vec d(logits.size());
  cross_entropy_backward(probs.data(), targets, V, scale, d.data());
  expect_fd(logits, loss, d, "dlogits");
}

TEST(BackwardOps, ColumnSumsAreExactForSmallIntegers) {
  const int64_t rows = 200, cols = 3;  // more rows than one chunk
  Vec m(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m[size_t(r * cols + c)] = float((r % 7) - c);
  Vec out = {1.0f, 1.0f, 1.0f};
  column_sums(m.data(), rows, cols, out.data());
  for (int64_t c = 0; c < cols; ++c) {
    double want = 1;
    for (int64_t r = 0; r < rows; ++r) want += double((r % 7) - c);
    EXPECT_EQ(out[size_t(c)], float(want));
  }
}
