#include "engine/compress/wanda.h"

#include <cmath>

#include "engine/compress/algorithm_params.h"
#include "engine/compress/layer_stats_accumulate.h"

namespace mcw {

CompressedTensor wanda_prune(const Tensor& w, const LayerStats& stats, const WandaOptions& opt,
                             const CancelToken* cancel) {
  if (w.ndim() == 2) {
    validate_target(opt.target, w.dim(1), w.name());
    check_layer_stats(stats, w.dim(1), w.name(), /*need_gram=*/false);
  }
  std::vector<float> values = weight_values(w);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<double> norm(static_cast<size_t>(cols));
  for (size_t j = 0; j < norm.size(); ++j) norm[j] = std::sqrt(stats.sq_norm[j]);
  std::vector<double> score(values.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = size_t(r * cols + c);
      score[i] = std::fabs(double(values[i])) * norm[size_t(c)];
    }
  std::vector<uint8_t> keep(values.size());
  select_kept(score.data(), rows, cols, opt.target, opt.scope, keep.data(), cancel);
  return pruned_tensor(w.name(), rows, cols, std::move(values), keep, opt.target);
}

// The recipe's "wanda" (algorithm.h).
namespace {

CompressedTensor wanda_stage_layer(LayerJob& job) {
  return wanda_prune(job.w, *job.stats, {algo::sparsity_target(job.params), algo::prune_scope(job.params)},
                     job.cancel);
}

LayerCost wanda_cost(const nlohmann::json&, const CostShape& s) {
  return {algo::pruned_stored_bytes(s.rows, s.cols), algo::per_weight_work_bytes(s.rows, s.cols),
          2 * s.rows * s.cols * algo::log2_at_least_1(s.cols)};
}

}  // namespace

CompressAlgorithm wanda_algorithm() {
  using namespace algo;
  return {.name = "wanda",
          .kind = "prune",
          .help = "Wanda: remove by |weight| x input norm, per output row",
          .params = {sparsity(), pattern(), scope("row")},
          .needs = needs_norms,
          .compress_layer = wanda_stage_layer,
          .cost = wanda_cost};
}

}  // namespace mcw
