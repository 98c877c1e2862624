#include "engine/compress/magnitude.h"

#include <cmath>

#include "engine/compress/nm_pattern.h"

namespace mcw {

CompressedTensor magnitude_prune(const Tensor& w, const MagnitudeOptions& opt,
                                 const CancelToken* cancel) {
  if (w.ndim() == 2) validate_target(opt.target, w.dim(1), w.name());
  std::vector<float> values = weight_values(w);
  const int64_t rows = w.dim(0), cols = w.dim(1), n = rows * cols;
  std::vector<float> score(values.size());
  for (size_t i = 0; i < values.size(); ++i) score[i] = std::fabs(values[i]);
  std::vector<uint8_t> keep(values.size());
  if (opt.target.is_nm())
    select_nm(score.data(), rows, cols, opt.target.nm_n, opt.target.nm_m, keep.data(), cancel);
  else if (opt.scope == MagnitudeScope::PerRow)
    select_per_row(score.data(), rows, cols, opt.target.sparsity, keep.data(), cancel);
  else
    keep_largest(score.data(), n, pruned_count(opt.target.sparsity, n), keep.data());
  if (cancel) cancel->throw_if_cancelled();
  return pruned_tensor(w.name(), rows, cols, std::move(values), keep, opt.target);
}

}  // namespace mcw
