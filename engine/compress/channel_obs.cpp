#include "engine/compress/channel_obs.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/compress/algorithm.h"
#include "engine/compress/algorithm_params.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/compress/linalg.h"
#include "engine/core/error.h"

namespace mcw {

namespace {

// In place: the inverse of the symmetric positive definite b × b matrix A (b is small: a
// convolution's kh·kw). False when A is not positive definite.
bool invert_small(std::vector<double>& A, int64_t b) {
  if (!cholesky_lower(A.data(), b)) return false;
  invert_lower(A.data(), b);  // L⁻¹; A⁻¹ = L⁻ᵀ L⁻¹
  std::vector<double> inv(size_t(b * b), 0.0);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < b; ++j) {
      double s = 0;
      for (int64_t k = std::max(i, j); k < b; ++k) s += A[size_t(k * b + i)] * A[size_t(k * b + j)];
      inv[size_t(i * b + j)] = s;
    }
  A = std::move(inv);
  return true;
}

}  // namespace

CompressedTensor prune_channels_obs(const float* w, int64_t rows, int64_t cols,
                                    const LayerStats& stats, const ChannelObsOptions& opt,
                                    const CancelToken* cancel, std::string name,
                                    ChannelObsReport* report) {
  const int64_t b = opt.channel_columns;
  if (b <= 0 || cols % b)
    throw Error(name, "channel_obs: " + std::to_string(b) + " columns per channel do not divide " +
                          std::to_string(cols) + " columns");
  if (!(opt.sparsity >= 0 && opt.sparsity < 1))
    throw Error(name, "channel_obs: sparsity must be in [0, 1)");
  check_layer_stats(stats, cols, name);
  const int64_t channels = cols / b;
  const int64_t remove = std::llround(opt.sparsity * double(channels));
  std::vector<double> W(w, w + rows * cols);
  // H⁻¹ of the dampened Hessian; dead inputs (no signal) get H_jj = 1 and zero weights.
  std::vector<double> H = stats.xtx;
  double mean = 0;
  for (int64_t j = 0; j < cols; ++j) mean += H[size_t(j * cols + j)];
  mean /= double(cols);
  for (int64_t j = 0; j < cols; ++j) {
    double& d = H[size_t(j * cols + j)];
    if (d == 0) {
      d = 1;
      for (int64_t r = 0; r < rows; ++r) W[size_t(r * cols + j)] = 0;
    }
    d += opt.percdamp * mean;
  }
  if (!cholesky_lower(H.data(), cols, cancel))
    throw Error(name, "channel_obs: the dampened Hessian is not positive definite (raise damp)");
  invert_lower(H.data(), cols, cancel);  // L⁻¹ (lower)
  std::vector<double> Hinv(size_t(cols * cols));
  tbb::parallel_for(int64_t(0), cols, [&](int64_t i) {
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t k = i; k < cols; ++k) s += H[size_t(k * cols + i)] * H[size_t(k * cols + j)];
      Hinv[size_t(i * cols + j)] = Hinv[size_t(j * cols + i)] = s;
    }
  });
  H.clear(), H.shrink_to_fit();

  // ρ of channel c under the current W and H⁻¹, and (H⁻¹_SS)⁻¹ for the update.
  auto score = [&](int64_t c, std::vector<double>& inv) {
    inv.assign(size_t(b * b), 0.0);
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < b; ++j)
        inv[size_t(i * b + j)] = Hinv[size_t((c * b + i) * cols + c * b + j)];
    if (!invert_small(inv, b)) return std::numeric_limits<double>::infinity();
    double rho = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double* ws = W.data() + r * cols + c * b;
      for (int64_t i = 0; i < b; ++i)
        for (int64_t j = 0; j < b; ++j) rho += ws[i] * inv[size_t(i * b + j)] * ws[j];
    }
    return rho;
  };
  std::vector<uint8_t> gone(size_t(channels), 0);
  ChannelObsReport rep{channels, remove, 0};
  std::vector<double> inv;
  if (!opt.compensate) {  // scores once, on the original weights; no update
    std::vector<std::pair<double, int64_t>> order;
    for (int64_t c = 0; c < channels; ++c) order.push_back({score(c, inv), c});
    std::sort(order.begin(), order.end());
    for (int64_t k = 0; k < remove; ++k)
      gone[size_t(order[size_t(k)].second)] = 1, rep.loss += order[size_t(k)].first;
  }
  for (int64_t step = 0; opt.compensate && step < remove; ++step) {
    if (cancel) cancel->throw_if_cancelled();
    std::vector<double> rho(size_t(channels), std::numeric_limits<double>::infinity());
    tbb::parallel_for(int64_t(0), channels, [&](int64_t c) {
      std::vector<double> local;
      if (!gone[size_t(c)]) rho[size_t(c)] = score(c, local);
    });
    const int64_t c = std::min_element(rho.begin(), rho.end()) - rho.begin();
    if (!std::isfinite(rho[size_t(c)])) throw Error(name, "channel_obs: no channel can be removed");
    rep.loss += rho[size_t(c)];
    score(c, inv);
    // G = (H⁻¹_SS)⁻¹ H⁻¹_S,: [b, cols]; W -= W_S G; H⁻¹ -= H⁻¹_:,S G.
    std::vector<double> G(size_t(b * cols), 0.0);
    for (int64_t i = 0; i < b; ++i)
      for (int64_t k = 0; k < b; ++k)
        for (int64_t j = 0; j < cols; ++j)
          G[size_t(i * cols + j)] += inv[size_t(i * b + k)] * Hinv[size_t((c * b + k) * cols + j)];
    tbb::parallel_for(int64_t(0), rows, [&](int64_t r) {
      double* wr = W.data() + r * cols;
      for (int64_t i = 0; i < b; ++i) {
        const double s = wr[c * b + i];
        for (int64_t j = 0; j < cols; ++j) wr[j] -= s * G[size_t(i * cols + j)];
      }
      for (int64_t i = 0; i < b; ++i) wr[c * b + i] = 0;  // exactly, not by cancellation
    });
    std::vector<double> HS(size_t(cols * b));  // H⁻¹_:,S, before the update overwrites it
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t i = 0; i < b; ++i) HS[size_t(j * b + i)] = Hinv[size_t(j * cols + c * b + i)];
    tbb::parallel_for(int64_t(0), cols, [&](int64_t j) {
      for (int64_t i = 0; i < b; ++i) {
        const double s = HS[size_t(j * b + i)];
        for (int64_t k = 0; k < cols; ++k)
          Hinv[size_t(j * cols + k)] -= s * G[size_t(i * cols + k)];
      }
    });
    gone[size_t(c)] = 1;
  }
  std::vector<float> out(size_t(rows * cols));
  std::vector<uint8_t> mask(size_t((rows * cols + 7) / 8), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const size_t i = size_t(r * cols + j);
      if (gone[size_t(j / b)]) continue;
      out[i] = float(W[i]);
      mask[i >> 3] |= uint8_t(1u << (i & 7));
    }
  if (report) *report = rep;
  CompressedTensor t = dense_tensor(Tensor::from_f32(out, {rows, cols}, name), name);
  t.mask = std::move(mask);
  return t;
}

// The recipe's "channel_obs" (algorithm.h).
namespace {

CompressedTensor channel_obs_stage_layer(LayerJob& job) {
  const nlohmann::json& p = job.params;
  ChannelObsOptions o;
  o.sparsity = p["sparsity"].get<double>();
  o.channel_columns = std::max<int64_t>(1, p["channel_columns"].get<int64_t>());
  o.percdamp = p["damp"].get<double>();
  o.compensate = p["compensate"].get<bool>();
  ChannelObsReport rep;
  CompressedTensor t = prune_channels_obs(job.w.as<float>(), job.w.dim(0), job.w.dim(1), *job.stats,
                                          o, job.cancel, job.name, &rep);
  job.note = std::to_string(rep.removed) + " of " + std::to_string(rep.channels) +
             " input channels removed";
  return t;
}

LayerCost channel_obs_cost(const nlohmann::json& p, const CostShape& s) {
  const double r = s.rows, c = s.cols, c2 = c * c;
  const double b = std::max(1.0, algo::param(p, "channel_columns", 0.0));
  const double removed = algo::param(p, "sparsity", 0.25) * c / b;
  // H and H⁻¹ in f64, W in f64; per removed channel the scores, W's and H⁻¹'s updates.
  return {algo::pruned_stored_bytes(r, c), 16 * c2 + 8 * r * c,
          c2 * c + removed * (2 * c2 * b + 2 * r * c * b + (c / b) * (b * b * b + r * b * b))};
}

}  // namespace

CompressAlgorithm channel_obs_algorithm() {
  using namespace algo;
  return {
      .name = "channel_obs",
      .kind = "prune",
      .help = "remove whole input channels, chosen and compensated by structured OBS",
      .params = {number("sparsity", 0.25, 0.0, 0.95, "share of input channels removed"),
                 integer("channel_columns", 0, 0, 1 << 20,
                         "columns per channel (0: 1 for a linear layer, kh*kw for a "
                         "convolution)"),
                 number("damp", 0.01, 0.0, 1.0, "dampening, fraction of the mean Hessian diagonal"),
                 flag("compensate", true,
                      "update the remaining weights (false: choose by the same scores and "
                      "zero, the ablation)")},
      .needs = needs_gram,
      .compress_layer = channel_obs_stage_layer,
      .cost = channel_obs_cost};
}

}  // namespace mcw
