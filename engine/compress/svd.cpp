#include "engine/compress/svd.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>

#include "engine/kernels/gemm.h"

namespace mcw {
namespace {

void check(const CancelToken* cancel) {
  if (cancel) cancel->throw_if_cancelled();
}

double dot(const double* a, const double* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i], s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2], s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

// Rotates rows p and q of G [., len] (and of V [., vlen]) so that they become orthogonal.
// Returns whether a rotation was needed.
bool rotate_pair(double* gp, double* gq, int64_t len, double* vp, double* vq, int64_t vlen) {
  constexpr double kTol = 1e-13;
  const double alpha = dot(gp, gp, len), beta = dot(gq, gq, len), gamma = dot(gp, gq, len);
  if (alpha == 0 || beta == 0 || std::fabs(gamma) <= kTol * std::sqrt(alpha * beta)) return false;
  const double zeta = (beta - alpha) / (2 * gamma);
  const double t = std::copysign(1.0, zeta) / (std::fabs(zeta) + std::sqrt(1 + zeta * zeta));
  const double c = 1 / std::sqrt(1 + t * t), s = c * t;
  for (int64_t i = 0; i < len; ++i) {
    const double a = gp[i], b = gq[i];
    gp[i] = c * a - s * b, gq[i] = s * a + c * b;
  }
  for (int64_t i = 0; i < vlen; ++i) {
    const double a = vp[i], b = vq[i];
    vp[i] = c * a - s * b, vq[i] = s * a + c * b;
  }
  return true;
}

// SVD of A [m, n] with m >= n given as G = Aᵀ [n, m] (consumed).
Svd jacobi_tall(std::vector<double> G, int64_t m, int64_t n, const CancelToken* cancel) {
  std::vector<double> V(static_cast<size_t>(n * n), 0.0);  // row i: the i-th right singular vector
  for (int64_t i = 0; i < n; ++i) V[size_t(i * n + i)] = 1.0;
  const int64_t players = n + (n & 1);  // an odd count gets a bye (index n)
  std::vector<int64_t> order(static_cast<size_t>(players));
  std::iota(order.begin(), order.end(), int64_t(0));
  const bool parallel = m * n >= 64 * 64;
  for (int sweep = 0; sweep < 60 && players > 1; ++sweep) {
    std::atomic<bool> rotated{false};
    for (int64_t round = 0; round < players - 1; ++round) {
      check(cancel);
      const auto do_pairs = [&](int64_t b, int64_t e) {
        bool any = false;
        for (int64_t i = b; i < e; ++i) {
          int64_t p = order[size_t(i)], q = order[size_t(players - 1 - i)];
          if (p >= n || q >= n) continue;
          if (p > q) std::swap(p, q);
          any |= rotate_pair(&G[size_t(p * m)], &G[size_t(q * m)], m, &V[size_t(p * n)],
                             &V[size_t(q * n)], n);
        }
        if (any) rotated.store(true, std::memory_order_relaxed);
      };
      if (parallel)
        tbb::parallel_for(tbb::blocked_range<int64_t>(0, players / 2, 4),
                          [&](const auto& r) { do_pairs(r.begin(), r.end()); });
      else
        do_pairs(0, players / 2);
      std::rotate(order.begin() + 1, order.end() - 1, order.end());
    }
    if (!rotated.load()) break;
  }
  Svd out;
  out.m = m, out.n = n, out.k = n;
  std::vector<double> norm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    norm[size_t(i)] = std::sqrt(dot(&G[size_t(i * m)], &G[size_t(i * m)], m));
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t(0));
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return norm[size_t(a)] > norm[size_t(b)]; });
  out.u.assign(size_t(m * n), 0.0);
  out.s.resize(size_t(n));
  out.vt.resize(size_t(n * n));
  for (int64_t c = 0; c < n; ++c) {
    const int64_t i = idx[size_t(c)];
    const double sigma = norm[size_t(i)];
    out.s[size_t(c)] = sigma;
    if (sigma > 0)
      for (int64_t r = 0; r < m; ++r) out.u[size_t(r * n + c)] = G[size_t(i * m + r)] / sigma;
    std::copy_n(&V[size_t(i * n)], n, &out.vt[size_t(c * n)]);
  }
  return out;
}

// Orthonormalises the rows of Qt [l, len] in place (classical Gram-Schmidt, applied twice
// for stability); R [l, l] (if given) receives the upper-triangular coefficients with
// original row j = Σ_k R[k][j]·Q row k. A row that is (numerically) in the span of the
// previous ones becomes zero with R[j][j] = 0.
void orthonormalize_rows(std::vector<double>& Qt, int64_t l, int64_t len, std::vector<double>* R) {
  if (R) R->assign(size_t(l * l), 0.0);
  std::vector<double> h(static_cast<size_t>(l));
  for (int64_t j = 0; j < l; ++j) {
    double* v = &Qt[size_t(j * len)];
    const double original = std::sqrt(dot(v, v, len));
    for (int pass = 0; pass < 2 && j > 0; ++pass) {
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, j, 16), [&](const auto& kr) {
        for (int64_t k = kr.begin(); k < kr.end(); ++k)
          h[size_t(k)] = dot(&Qt[size_t(k * len)], v, len);
      });
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, len, 1024), [&](const auto& ir) {
        for (int64_t k = 0; k < j; ++k) {
          const double* q = &Qt[size_t(k * len)];
          const double hk = h[size_t(k)];
          for (int64_t i = ir.begin(); i < ir.end(); ++i) v[i] -= hk * q[i];
        }
      });
      if (R)
        for (int64_t k = 0; k < j; ++k) (*R)[size_t(k * l + j)] += h[size_t(k)];
    }
    const double nv = std::sqrt(dot(v, v, len));
    if (!(nv > 1e-12 * original) || nv == 0) {
      std::fill(v, v + len, 0.0);
      continue;
    }
    for (int64_t i = 0; i < len; ++i) v[i] /= nv;
    if (R) (*R)[size_t(j * l + j)] = nv;
  }
}

// Y [rows, l] f32 -> its columns as rows of an f64 [l, rows] matrix, and back.
std::vector<double> columns_of(const std::vector<float>& Y, int64_t rows, int64_t l) {
  std::vector<double> t(static_cast<size_t>(rows * l));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < l; ++c) t[size_t(c * rows + r)] = Y[size_t(r * l + c)];
  return t;
}
std::vector<float> from_columns(const std::vector<double>& t, int64_t rows, int64_t l) {
  std::vector<float> Y(static_cast<size_t>(rows * l));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < l; ++c) Y[size_t(r * l + c)] = float(t[size_t(c * rows + r)]);
  return Y;
}

}  // namespace

Svd jacobi_svd(const double* a, int64_t m, int64_t n, const CancelToken* cancel) {
  if (m >= n) {
    std::vector<double> G(static_cast<size_t>(m * n));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) G[size_t(c * m + r)] = a[r * n + c];
    return jacobi_tall(std::move(G), m, n, cancel);
  }
  // Wide: decompose Aᵀ (whose columns are A's rows) and swap the factors.
  Svd t = jacobi_tall(std::vector<double>(a, a + m * n), n, m, cancel);
  Svd out;
  out.m = m, out.n = n, out.k = m;
  out.s = std::move(t.s);
  out.u.resize(size_t(m * m));
  out.vt.resize(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < m; ++c) out.u[size_t(i * m + c)] = t.vt[size_t(c * m + i)];
  for (int64_t c = 0; c < m; ++c)
    for (int64_t j = 0; j < n; ++j) out.vt[size_t(c * n + j)] = t.u[size_t(j * m + c)];
  return out;
}

Svd randomized_svd(const float* a, int64_t m, int64_t n, int64_t l, int power_iterations,
                   uint64_t seed, const CancelToken* cancel) {
  l = std::clamp<int64_t>(l, 1, std::min(m, n));
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> omega(static_cast<size_t>(n * l));
  for (float& v : omega) v = normal(rng);
  std::vector<float> Y(static_cast<size_t>(m * l)), Z(static_cast<size_t>(n * l));
  matmul(a, omega.data(), Y.data(), m, l, n);
  std::vector<double> Qt = columns_of(Y, m, l);
  orthonormalize_rows(Qt, l, m, nullptr);
  for (int it = 0; it < power_iterations; ++it) {
    check(cancel);
    Y = from_columns(Qt, m, l);
    matmul_at(a, Y.data(), Z.data(), n, l, m);  // Z = Aᵀ·Q
    std::vector<double> Zt = columns_of(Z, n, l);
    orthonormalize_rows(Zt, l, n, nullptr);
    Z = from_columns(Zt, n, l);
    matmul(a, Z.data(), Y.data(), m, l, n);  // Y = A·Z
    Qt = columns_of(Y, m, l);
    orthonormalize_rows(Qt, l, m, nullptr);
  }
  check(cancel);
  // Aᵀ·Q = Q2·R, R = Ur·S·Vrᵀ, so A ≈ Q·Qᵀ·A = (Q·Vr)·S·(Q2·Ur)ᵀ.
  Y = from_columns(Qt, m, l);
  matmul_at(a, Y.data(), Z.data(), n, l, m);
  std::vector<double> Q2t = columns_of(Z, n, l), R;
  orthonormalize_rows(Q2t, l, n, &R);
  const Svd small = jacobi_svd(R.data(), l, l, cancel);
  Svd out;
  out.m = m, out.n = n, out.k = l;
  out.s = small.s;
  out.u.assign(size_t(m * l), 0.0);
  out.vt.assign(size_t(l * n), 0.0);
  std::vector<double> Vr(static_cast<size_t>(l * l));  // Vr[k][c] = small.vt[c][k]
  for (int64_t c = 0; c < l; ++c)
    for (int64_t k = 0; k < l; ++k) Vr[size_t(k * l + c)] = small.vt[size_t(c * l + k)];
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, m, 64), [&](const auto& rr) {
    for (int64_t i = rr.begin(); i < rr.end(); ++i) {
      double* dst = &out.u[size_t(i * l)];
      for (int64_t k = 0; k < l; ++k) {
        const double q = Qt[size_t(k * m + i)];
        const double* v = &Vr[size_t(k * l)];
        for (int64_t c = 0; c < l; ++c) dst[c] += q * v[c];
      }
    }
  });
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, l, 4), [&](const auto& cr) {
    for (int64_t c = cr.begin(); c < cr.end(); ++c)
      for (int64_t k = 0; k < l; ++k) {
        const double w = small.u[size_t(k * l + c)];
        if (w == 0) continue;
        const double* q = &Q2t[size_t(k * n)];
        double* dst = &out.vt[size_t(c * n)];
        for (int64_t j = 0; j < n; ++j) dst[j] += w * q[j];
      }
  });
  return out;
}

}  // namespace mcw
