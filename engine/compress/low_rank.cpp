#include "engine/compress/low_rank.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "engine/compress/algorithm_params.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/compress/linalg.h"
#include "engine/compress/sparsity.h"
#include "engine/compress/svd.h"
#include "engine/core/error.h"
#include "engine/kernels/gemm.h"

namespace mcw {
namespace {

void validate(const Tensor& w, const LowRankOptions& o, const LayerStats* stats) {
  const std::string& name = w.name();
  if (w.ndim() != 2) return;  // weight_values() reports it
  const int64_t k = std::min(w.dim(0), w.dim(1));
  if (o.rank < 0 || o.rank > k)
    throw Error(name, "low-rank rank " + std::to_string(o.rank) + " is outside [1, " +
                          std::to_string(k) + "]");
  if (o.rank == 0 && !(o.energy > 0.0 && o.energy <= 1.0))
    throw Error(name, "low-rank needs a rank > 0 or an energy fraction in (0, 1]");
  if (!(o.damp >= 0.0 && std::isfinite(o.damp)))
    throw Error(name, "low-rank dampening must be a finite value >= 0");
  if (o.power_iterations < 0 || o.power_iterations > 50 || o.oversample < 0 || o.exact_max_dim < 0)
    throw Error(name, "low-rank: bad randomized SVD settings");
  if (o.activation_aware) {
    if (!stats) throw Error(name, "activation-aware low rank needs calibration statistics");
    check_layer_stats(*stats, w.dim(1), name);
  }
}

// Lower S with S·Sᵀ = XᵀX + λI; inputs that never fire get a unit diagonal first.
std::vector<double> whitening_factor(const LayerStats& st, double damp, const std::string& name,
                                     const CancelToken* cancel) {
  const int64_t n = st.cols;
  std::vector<double> S = st.xtx;
  double mean = 0;
  for (int64_t j = 0; j < n; ++j) {
    double& d = S[size_t(j * n + j)];
    if (d == 0) d = 1;
    mean += d;
  }
  const double lambda = damp * mean / double(n);
  for (int64_t j = 0; j < n; ++j) S[size_t(j * n + j)] += lambda;
  if (!cholesky_lower(S.data(), n, cancel))
    throw Error(name, "activation statistics are not positive definite even after dampening");
  return S;
}

}  // namespace

int64_t energy_rank(const std::vector<double>& s, double energy, double total_sq) {
  const double target = energy * total_sq * (1 - 1e-12);
  double acc = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    acc += s[i] * s[i];
    if (acc >= target) return int64_t(i) + 1;
  }
  return 0;
}

CompressedTensor low_rank(const Tensor& w, const LowRankOptions& o, const LayerStats* stats,
                          const CancelToken* cancel) {
  validate(w, o, stats);
  const std::vector<float> W = weight_values(w);
  const int64_t rows = w.dim(0), cols = w.dim(1), k = std::min(rows, cols);
  std::vector<double> S;  // whitening factor, lower [cols, cols]
  std::vector<float> M = W;
  if (o.activation_aware) {
    S = whitening_factor(*stats, o.damp, w.name(), cancel);
    const std::vector<float> S32(S.begin(), S.end());
    matmul(W.data(), S32.data(), M.data(), rows, cols, cols);
  }
  if (cancel) cancel->throw_if_cancelled();
  double total = 0;
  for (float v : M) total += double(v) * double(v);

  Svd svd;
  int64_t r = o.rank;
  if (k <= o.exact_max_dim) {
    const std::vector<double> Md(M.begin(), M.end());
    svd = jacobi_svd(Md.data(), rows, cols, cancel);
    if (r == 0) {
      double exact_total = 0;
      for (double s : svd.s) exact_total += s * s;
      r = std::max<int64_t>(1, energy_rank(svd.s, o.energy, exact_total));
    }
  } else if (r > 0) {
    svd = randomized_svd(M.data(), rows, cols, std::min(k, r + o.oversample), o.power_iterations,
                         o.seed, cancel);
  } else {
    const int64_t cap = std::max<int64_t>(1, rows * cols / (rows + cols));
    for (int64_t trial = std::min<int64_t>(64, cap);; trial = std::min(cap, trial * 2)) {
      const int64_t l = std::min(k, trial + o.oversample);
      svd = randomized_svd(M.data(), rows, cols, l, o.power_iterations, o.seed, cancel);
      r = energy_rank(svd.s, o.energy, total);
      if (r > 0 && (r <= trial || l == k)) break;
      if (trial >= cap) {
        r = cap;
        break;
      }
    }
    r = std::min(r, svd.k);
  }

  // Balanced factors in f64: A = U_r·Σ^½, B = Σ^½·V_rᵀ (then ·S⁻¹ when whitened).
  std::vector<double> A(static_cast<size_t>(rows * r)), B(static_cast<size_t>(r * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < r; ++c)
      A[size_t(i * r + c)] = svd.u[size_t(i * svd.k + c)] * std::sqrt(svd.s[size_t(c)]);
  for (int64_t c = 0; c < r; ++c)
    for (int64_t j = 0; j < cols; ++j)
      B[size_t(c * cols + j)] = std::sqrt(svd.s[size_t(c)]) * svd.vt[size_t(c * cols + j)];
  if (o.activation_aware) {
    // Each row b of B solves b·S = row (S lower), from the last column back; St = Sᵀ keeps
    // the inner loop contiguous.
    std::vector<double> St(S.size());
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j <= i; ++j) St[size_t(j * cols + i)] = S[size_t(i * cols + j)];
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, r, 1), [&](const auto& rr) {
      for (int64_t c = rr.begin(); c < rr.end(); ++c) {
        double* b = &B[size_t(c * cols)];
        for (int64_t j = cols - 1; j >= 0; --j) {
          const double* sj = &St[size_t(j * cols)];
          double v = b[j];
          for (int64_t i = j + 1; i < cols; ++i) v -= b[i] * sj[i];
          b[j] = v / sj[j];
        }
      }
    });
  }
  if (cancel) cancel->throw_if_cancelled();

  CompressedTensor c;
  c.name = w.name();
  c.rows = rows, c.cols = cols;
  c.coding = WeightCoding::LowRank;
  c.rank = r;
  c.lr_a = Tensor::from_f32(std::vector<float>(A.begin(), A.end()), {rows, r}, c.name);
  c.lr_b = Tensor::from_f32(std::vector<float>(B.begin(), B.end()), {r, cols}, c.name);
  return c;
}

// The recipe's "svd" (algorithm.h).
namespace {

CompressedTensor svd_stage_layer(LayerJob& job) {
  LowRankOptions o;
  o.rank = job.params["rank"].get<int64_t>();
  o.energy = job.params["energy"].get<double>();
  o.activation_aware = job.params["activation_aware"].get<bool>();
  return low_rank(job.w, o, o.activation_aware ? job.stats : nullptr, job.cancel);
}

CalibrationNeed svd_needs(const nlohmann::json& p) {  // whitening reads XᵀX
  return algo::param(p, "activation_aware", false) ? CalibrationNeed::Gram : CalibrationNeed::None;
}

LayerCost svd_cost(const nlohmann::json& p, const CostShape& s) {
  const double r = s.rows, c = s.cols, n = r * c, m = std::min(r, c);
  const int rank = algo::param(p, "rank", 0);
  const double k = rank > 0 ? std::min<double>(rank, m) : m;  // energy: at most full rank
  const bool aware = algo::param(p, "activation_aware", false);
  // One-sided Jacobi: ~8 sweeps of m²/2 rotations over vectors of length max(r, c).
  return {4 * (r + c) * k, 8 * n * 3 + 4 * n + 8 * m * m + 8 * (r + c) * m + (aware ? 16 * c * c : 0),
          24 * r * c * m + (aware ? 2 * c * c * c : 0)};
}

}  // namespace

CompressAlgorithm svd_algorithm() {
  using namespace algo;
  return {.name = "svd",
          .kind = "low-rank",
          .help = "truncated SVD to a rank or an energy fraction",
          .params = {integer("rank", 0, 0, 65536, "rank to keep (0: use energy)"),
                     number("energy", 0.9, 0.01, 1.0, "share of squared singular values to keep"),
                     flag("activation_aware", false, "whiten with the calibration Gram matrix first")},
          .needs = svd_needs,
          .compress_layer = svd_stage_layer,
          .cost = svd_cost};
}

}  // namespace mcw
