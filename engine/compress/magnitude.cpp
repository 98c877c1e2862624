#include "engine/compress/magnitude.h"

#include <cmath>

#include "engine/compress/algorithm_params.h"

namespace mcw {

CompressedTensor magnitude_prune(const Tensor& w, const MagnitudeOptions& opt,
                                 const CancelToken* cancel) {
  if (w.ndim() == 2) validate_target(opt.target, w.dim(1), w.name());
  std::vector<float> values = weight_values(w);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<float> score(values.size());
  for (size_t i = 0; i < values.size(); ++i) score[i] = std::fabs(values[i]);
  std::vector<uint8_t> keep(values.size());
  select_kept(score.data(), rows, cols, opt.target, opt.scope, keep.data(), cancel);
  return pruned_tensor(w.name(), rows, cols, std::move(values), keep, opt.target);
}

// The recipe's "magnitude" (algorithm.h).
namespace {

CompressedTensor magnitude_stage_layer(LayerJob& job) {
  return magnitude_prune(job.w, {algo::sparsity_target(job.params), algo::prune_scope(job.params)},
                         job.cancel);
}

LayerCost magnitude_cost(const nlohmann::json&, const CostShape& s) {
  const double n = s.rows * s.cols;
  return {algo::pruned_stored_bytes(s.rows, s.cols), algo::per_weight_work_bytes(s.rows, s.cols),
          2 * n * algo::log2_at_least_1(n)};
}

}  // namespace

CompressAlgorithm magnitude_algorithm() {
  using namespace algo;
  return {.name = "magnitude",
          .kind = "prune",
          .help = "remove the smallest weights",
          .params = {sparsity(), pattern(), scope("layer")},
          .needs = needs_nothing,
          .compress_layer = magnitude_stage_layer,
          .cost = magnitude_cost};
}

}  // namespace mcw
