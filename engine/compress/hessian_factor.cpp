#include "engine/compress/hessian_factor.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>

#include "engine/core/error.h"

#include "engine/compress/linalg.h"

namespace mcw {
namespace {

struct SweepHessian {
  const std::vector<double>& xtx;
  int64_t n;
  const std::vector<int64_t>& perm;
  const std::vector<uint8_t>& dead;
  double damp;

  int64_t column(int64_t i) const { return perm.empty() ? i : perm[size_t(i)]; }
  // Row i of Ĥ into out[0, n).
  template <typename T>
  void row(int64_t i, T* out) const {
    const double* x = xtx.data() + column(i) * n;
    if (perm.empty())
      for (int64_t j = 0; j < n; ++j) out[j] = T(x[j]);
    else
      for (int64_t j = 0; j < n; ++j) out[j] = T(x[perm[size_t(j)]]);
    const double diag = x[column(i)] + (dead[size_t(column(i))] ? 1.0 : 0.0) + damp;
    out[i] = T(diag);
  }
  template <typename T>
  void fill(T* out) const {
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 64), [&](const auto& rr) {
      for (int64_t i = rr.begin(); i < rr.end(); ++i) row(i, out + i * n);
    });
  }
};

// ‖U·Ĥ·Uᵀ·z − z‖ / ‖z‖ for a fixed ±1 vector z, in f64 (three passes over n² entries).
double factor_residual(const SweepHessian& h, const float* U) {
  const int64_t n = h.n;
  std::vector<double> z(static_cast<size_t>(n)), y(static_cast<size_t>(n), 0.0);
  std::vector<double> w(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  uint64_t state = 0x9E3779B97F4A7C15ull;  // xorshift64: the same z every run
  for (double& zi : z) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    zi = (state >> 63) ? 1.0 : -1.0;
  }
  // y = Uᵀ·z: column tiles of y, each reading the rows of U above its end.
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 256), [&](const auto& jr) {
    for (int64_t i = 0; i < jr.end(); ++i) {
      const float* u = U + i * n;
      for (int64_t j = std::max(i, jr.begin()); j < jr.end(); ++j)
        y[size_t(j)] += u[j] * z[size_t(i)];
    }
  });
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 64), [&](const auto& rr) {
    std::vector<double> row(static_cast<size_t>(n));
    for (int64_t i = rr.begin(); i < rr.end(); ++i) {
      h.row(i, row.data());
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += row[size_t(j)] * y[size_t(j)];
      w[size_t(i)] = s;
    }
  });
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 64), [&](const auto& rr) {
    for (int64_t i = rr.begin(); i < rr.end(); ++i) {
      const float* u = U + i * n;
      double s = 0;
      for (int64_t j = i; j < n; ++j) s += u[j] * w[size_t(j)];
      v[size_t(i)] = s;
    }
  });
  double err = 0;
  for (int64_t i = 0; i < n; ++i)
    err += (v[size_t(i)] - z[size_t(i)]) * (v[size_t(i)] - z[size_t(i)]);
  return std::sqrt(err / double(n));
}

}  // namespace

bool factor_inverse_hessian(const std::vector<double>& xtx, int64_t n,
                            const std::vector<int64_t>& perm, const std::vector<uint8_t>& dead,
                            const HessianFactorOptions& opt, std::vector<float>& U,
                            HessianFactorReport* report, const CancelToken* cancel) {
  const SweepHessian h{xtx, n, perm, dead, opt.damp};
  HessianFactorReport rep;
  U.resize(size_t(n * n));
  if (opt.tolerance > 0) {
    h.fill(U.data());
    rep.f32_residual = inverse_cholesky_upper_in_place(U.data(), n, cancel)
                           ? factor_residual(h, U.data())
                           : INFINITY;
    if (rep.f32_residual <= opt.tolerance) {  // false for NaN too
      rep.residual = rep.f32_residual;
      if (report) *report = rep;
      return true;
    }
  }
  std::vector<double> f64(size_t(n * n));
  h.fill(f64.data());
  if (!inverse_cholesky_upper_in_place(f64.data(), n, cancel)) return false;
  tbb::parallel_for(tbb::blocked_range<size_t>(0, f64.size(), 1 << 16), [&](const auto& r) {
    for (size_t i = r.begin(); i < r.end(); ++i) U[i] = float(f64[i]);
  });
  rep.f64 = true;
  rep.residual = factor_residual(h, U.data());
  if (report) *report = rep;
  return true;
}

double factor_dampened(const std::vector<double>& xtx, int64_t n, const std::vector<int64_t>& perm,
                       const std::vector<uint8_t>& dead, double percdamp, double tolerance,
                       std::vector<float>& U, HessianFactorReport* report,
                       const CancelToken* cancel, const std::string& name,
                       const std::string& method) {
  double mean_diag = 0;  // a sum until divided in the dampening, as GPTQ's reference
  for (int64_t k = 0; k < n; ++k) {
    const int64_t c = perm.empty() ? k : perm[size_t(k)];
    mean_diag += dead[size_t(c)] ? 1.0 : xtx[size_t(c * n + c)];
  }
  HessianFactorOptions fo;
  fo.tolerance = tolerance;
  for (double p = percdamp, step = 0.01;; p = percdamp + step, step *= 2) {
    fo.damp = p * mean_diag / double(n);
    if (factor_inverse_hessian(xtx, n, perm, dead, fo, U, report, cancel)) return p;
    if (percdamp + step > 1.0)
      throw Error(name, method + ": the Hessian is not positive definite even with dampening raised to " +
                            std::to_string(p) + " (from " + std::to_string(percdamp) + ")");
  }
}

std::string dampening_note(double requested, double used, const HessianFactorReport& report) {
  std::string note;
  if (used != requested)
    note = "damp raised to " + std::to_string(used) + " (Hessian not positive definite)";
  if (report.f64)
    note += std::string(note.empty() ? "" : "; ") + "H factored in f64 (f32 residual " +
            std::to_string(report.f32_residual) + ")";
  return note;
}

}  // namespace mcw
