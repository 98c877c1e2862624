#include "engine/compress/sparsity.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/compress/nm_pattern.h"
#include "engine/core/error.h"

namespace mcw {

void validate_target(const SparsityTarget& t, int64_t cols, const std::string& name) {
  if (t.is_nm() || t.nm_n != 0) {
    const std::string pattern = std::to_string(t.nm_n) + ":" + std::to_string(t.nm_m);
    if (t.nm_m < 2 || t.nm_n <= 0 || t.nm_n >= t.nm_m)
      throw Error(name, "N:M pattern " + pattern + " needs 0 < N < M");
    if (cols % t.nm_m != 0)
      throw Error(name, "N:M pattern " + pattern + " needs M to divide the " +
                            std::to_string(cols) + " input columns");
    return;
  }
  if (!(t.sparsity >= 0.0 && t.sparsity <= 1.0))
    throw Error(name, "sparsity " + std::to_string(t.sparsity) + " is outside [0, 1]");
}

std::vector<float> weight_values(const Tensor& w) {
  if (w.ndim() != 2 || w.dim(0) <= 0 || w.dim(1) <= 0)
    throw Error(w.name(), "expected a non-empty 2-D weight, got " + shape_string(w.shape()));
  std::vector<float> v = w.to_f32();
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      throw Error(w.name(), "weight [" + std::to_string(i / size_t(w.dim(1))) + ", " +
                                std::to_string(i % size_t(w.dim(1))) + "] is not finite");
  return v;
}

int64_t pruned_count(double sparsity, int64_t count) {
  return std::clamp<int64_t>(std::llround(sparsity * double(count)), 0, count);
}

template <class T>
void keep_largest(const T* scores, int64_t n, int64_t prune, uint8_t* keep) {
  std::fill(keep, keep + n, uint8_t(1));
  if (prune <= 0) return;
  if (prune >= n) {
    std::fill(keep, keep + n, uint8_t(0));
    return;
  }
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t(0));
  const auto less = [scores](int64_t a, int64_t b) {
    return scores[a] < scores[b] || (scores[a] == scores[b] && a < b);
  };
  std::nth_element(idx.begin(), idx.begin() + (prune - 1), idx.end(), less);
  for (int64_t i = 0; i < prune; ++i) keep[idx[size_t(i)]] = 0;
}

template <class T>
void select_per_row(const T* scores, int64_t rows, int64_t cols, double sparsity, uint8_t* keep,
                    const CancelToken* cancel) {
  const int64_t prune = pruned_count(sparsity, cols);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& rr) {
    if (cancel && cancel->cancelled()) return;
    for (int64_t r = rr.begin(); r < rr.end(); ++r)
      keep_largest(scores + r * cols, cols, prune, keep + r * cols);
  });
  if (cancel) cancel->throw_if_cancelled();
}

template <class T>
void select_kept(const T* scores, int64_t rows, int64_t cols, const SparsityTarget& target,
                 PruneScope scope, uint8_t* keep, const CancelToken* cancel) {
  if (target.is_nm())
    select_nm(scores, rows, cols, target.nm_n, target.nm_m, keep, cancel);
  else if (scope == PruneScope::PerRow)
    select_per_row(scores, rows, cols, target.sparsity, keep, cancel);
  else
    keep_largest(scores, rows * cols, pruned_count(target.sparsity, rows * cols), keep);
  if (cancel) cancel->throw_if_cancelled();
}

template void keep_largest<float>(const float*, int64_t, int64_t, uint8_t*);
template void keep_largest<double>(const double*, int64_t, int64_t, uint8_t*);
template void select_per_row<float>(const float*, int64_t, int64_t, double, uint8_t*,
                                    const CancelToken*);
template void select_per_row<double>(const double*, int64_t, int64_t, double, uint8_t*,
                                     const CancelToken*);

std::vector<uint8_t> pack_mask(const uint8_t* keep, size_t n) {
  std::vector<uint8_t> m((n + 7) / 8, 0);
  for (size_t i = 0; i < n; ++i)
    if (keep[i]) m[i >> 3] |= uint8_t(1u << (i & 7));
  return m;
}

CompressedTensor pruned_tensor(std::string name, int64_t rows, int64_t cols,
                               std::vector<float> values, const std::vector<uint8_t>& keep,
                               const SparsityTarget& target) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!keep[i]) values[i] = 0.0f;
  CompressedTensor c;
  c.name = std::move(name);
  c.rows = rows, c.cols = cols;
  c.coding = WeightCoding::Dense;
  c.dense = Tensor::from_f32(values, {rows, cols}, c.name);
  c.mask = pack_mask(keep.data(), keep.size());
  if (target.is_nm()) c.nm_n = target.nm_n, c.nm_m = target.nm_m;
  return c;
}

template void select_kept<float>(const float*, int64_t, int64_t, const SparsityTarget&,
                                  PruneScope, uint8_t*, const CancelToken*);
template void select_kept<double>(const double*, int64_t, int64_t, const SparsityTarget&,
                                   PruneScope, uint8_t*, const CancelToken*);

}  // namespace mcw
