#include "engine/compress/sparsegpt.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "engine/compress/algorithm_params.h"
#include "engine/compress/layer_stats_accumulate.h"
#include "engine/compress/hessian_factor.h"
#include "engine/compress/nm_pattern.h"
#include "engine/core/error.h"
#include "engine/kernels/gemm.h"

namespace mcw {

CompressedTensor sparsegpt_prune(const Tensor& w, const LayerStats& stats,
                                 const SparseGptOptions& opt, const CancelToken* cancel,
                                 SparseGptReport* report) {
  const std::string& name = w.name();
  if (w.ndim() == 2) {
    validate_target(opt.target, w.dim(1), name);
    check_layer_stats(stats, w.dim(1), name);
  }
  if (!(opt.damp >= 0.0 && std::isfinite(opt.damp)))
    throw Error(name, "SparseGPT dampening must be a finite value >= 0");
  if (opt.block_size <= 0) throw Error(name, "SparseGPT block size must be positive");
  std::vector<float> W = weight_values(w);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const bool nm = opt.target.is_nm();
  const int m = opt.target.nm_m, n_keep = opt.target.nm_n;
  // Blocks must not split an N:M group.
  const int64_t B = nm ? std::max<int64_t>(m, opt.block_size - opt.block_size % m) : opt.block_size;

  std::vector<uint8_t> dead(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    dead[size_t(j)] = stats.xtx[size_t(j * cols + j)] == 0.0;
    if (dead[size_t(j)])
      for (int64_t r = 0; r < rows; ++r) W[size_t(r * cols + j)] = 0.0f;
  }
  std::vector<float> U;  // f32 as the reference, checked (hessian_factor.h)
  SparseGptReport local;
  SparseGptReport& rep = report ? *report : local;
  rep.damp = factor_dampened(stats.xtx, cols, {}, dead, opt.damp, opt.factor_tolerance, U,
                             &rep.factor, cancel, name, "sparsegpt");

  std::vector<uint8_t> keep(W.size(), 1);
  std::vector<float> neg_err(static_cast<size_t>(rows * B));
  std::vector<double> block_score;
  std::vector<uint8_t> block_keep;
  for (int64_t i1 = 0; i1 < cols; i1 += B) {
    if (cancel) cancel->throw_if_cancelled();
    const int64_t i2 = std::min(cols, i1 + B), bc = i2 - i1;
    if (!nm) {
      block_score.resize(size_t(rows * bc));
      block_keep.resize(block_score.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < bc; ++j) {
          const double v = W[size_t(r * cols + i1 + j)], d = U[size_t((i1 + j) * cols + i1 + j)];
          block_score[size_t(r * bc + j)] = v * v / (d * d);
        }
      // Cumulative rounding: the blocks' counts add up to exactly round(s · total).
      const int64_t prune = pruned_count(opt.target.sparsity, rows * i2) -
                            pruned_count(opt.target.sparsity, rows * i1);
      keep_largest(block_score.data(), rows * bc, prune, block_keep.data());
      for (int64_t r = 0; r < rows; ++r)
        std::copy_n(block_keep.data() + r * bc, bc, keep.data() + r * cols + i1);
    }
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 8), [&](const auto& rr) {
      std::vector<double> wr(static_cast<size_t>(bc)), score(static_cast<size_t>(std::max(m, 1)));
      for (int64_t r = rr.begin(); r < rr.end(); ++r) {
        float* row = W.data() + r * cols;
        uint8_t* krow = keep.data() + r * cols;
        for (int64_t j = 0; j < bc; ++j) wr[size_t(j)] = row[i1 + j];
        for (int64_t j = 0; j < bc; ++j) {
          const int64_t col = i1 + j;
          const float* u = U.data() + col * cols;
          if (nm && col % m == 0) {
            for (int t = 0; t < m; ++t) {
              const double d = U[size_t((col + t) * cols + col + t)];
              score[size_t(t)] = wr[size_t(j + t)] * wr[size_t(j + t)] / (d * d);
            }
            select_nm_group(score.data(), n_keep, m, krow + col);
          }
          double q = 0.0;
          if (krow[col])
            q = opt.quantize ? double(opt.quantize(r, col, float(wr[size_t(j)]))) : wr[size_t(j)];
          const double e = (wr[size_t(j)] - q) / u[col];
          for (int64_t t = j + 1; t < bc; ++t) wr[size_t(t)] -= e * u[i1 + t];
          row[col] = float(q);
          neg_err[size_t(r * bc + j)] = float(-e);
        }
      }
    });
    if (i2 < cols)
      matmul_strided(neg_err.data(), bc, U.data() + i1 * cols + i2, cols, W.data() + i2, cols,
                     rows, cols - i2, bc, /*accumulate=*/true);
  }
  if (cancel) cancel->throw_if_cancelled();
  return pruned_tensor(name, rows, cols, std::move(W), keep, opt.target);
}

WeightQuantizer rtn_quantizer(const Tensor& w, int bits, int64_t group_size) {
  if (bits < 2 || bits > 8) throw Error(w.name(), "RTN bits must be in [2, 8]");
  const std::vector<float> v = weight_values(w);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const int64_t g = group_size <= 0 ? cols : group_size;
  if (cols % g != 0)
    throw Error(w.name(), "RTN group size " + std::to_string(g) + " does not divide " +
                              std::to_string(cols) + " columns");
  const int64_t groups = cols / g;
  const int qmax = (1 << (bits - 1)) - 1;
  auto scale = std::make_shared<std::vector<float>>(size_t(rows * groups));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < groups; ++k) {
      float mx = 0;
      for (int64_t c = k * g; c < (k + 1) * g; ++c)
        mx = std::max(mx, std::fabs(v[size_t(r * cols + c)]));
      (*scale)[size_t(r * groups + k)] = mx / float(qmax);
    }
  return [scale, groups, g, qmax](int64_t row, int64_t col, float value) {
    const float s = (*scale)[size_t(row * groups + col / g)];
    if (s == 0.0f) return 0.0f;
    const float q = std::clamp(std::nearbyint(value / s), float(-qmax - 1), float(qmax));
    return q * s;
  };
}

// The recipe's "sparsegpt" (algorithm.h).
namespace {

CompressedTensor sparsegpt_stage_layer(LayerJob& job) {
  const nlohmann::json& p = job.params;
  SparseGptOptions o;
  o.target = algo::sparsity_target(p);
  o.damp = p["damp"].get<double>();
  o.block_size = p["block_size"].get<int64_t>();
  if (const int b = p["quantize_bits"].get<int>(); b > 0) o.quantize = rtn_quantizer(job.w, b, 0);
  SparseGptReport report;
  CompressedTensor out = sparsegpt_prune(job.w, *job.stats, o, job.cancel, &report);
  job.note = dampening_note(o.damp, report.damp, report.factor);
  return out;
}

LayerCost sparsegpt_cost(const nlohmann::json& p, const CostShape& s) {
  const double r = s.rows, c = s.cols, n = r * c, c2 = c * c;
  const double block = std::min<double>(algo::param(p, "block_size", 128), c);
  // As GPTQ's: H (f64) and its f32 factor, work copies, the block's errors and scores.
  return {algo::pruned_stored_bytes(r, c), 8 * c2 + 4 * c2 + 4 * n + n + 4 * r * block + 16 * r * block,
          2 * c2 * c / 3 + r * c2 + 10 * n};
}

}  // namespace

CompressAlgorithm sparsegpt_algorithm() {
  using namespace algo;
  return {.name = "sparsegpt",
          .kind = "prune",
          .help = "SparseGPT: OBS pruning with Hessian reconstruction",
          .params = {sparsity(), pattern(),
                     number("damp", 0.01, 0.0, 1.0, "dampening, fraction of the mean Hessian diagonal"),
                     integer("block_size", 128, 1, 4096, "columns per block"),
                     {"quantize_bits", "int", 0, {0, 2, 3, 4, 8}, 0, 0,
                      "quantise jointly to this many bits (0: off)"}},
          .needs = needs_gram,
          .compress_layer = sparsegpt_stage_layer,
          .cost = sparsegpt_cost};
}

}  // namespace mcw
