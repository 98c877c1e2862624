#include "engine/compress/magnitude.h"

#include <cmath>

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

}  // namespace mcw
