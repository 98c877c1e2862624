// Shared pieces of every pruning method: the sparsity target, its validation, turning
// importance scores into a keep-mask, and packing the result into a CompressedTensor.
//
// Counting rule: at sparsity s a set of `count` weights loses exactly round(s·count) of
// them (pruned_count), the ones with the smallest scores; equal scores are pruned in
// index order (lower flat index first), so results are deterministic.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"
#include "engine/core/tensor.h"

namespace mcw {

struct SparsityTarget {
  double sparsity = 0.5;   // fraction of weights set to zero, in [0, 1]; unused for N:M
  int nm_n = 0, nm_m = 0;  // nm_m > 0: keep nm_n of every nm_m consecutive inputs of a row
  bool is_nm() const { return nm_m > 0; }
};

// Throws mcw::Error naming `name` for a sparsity outside [0, 1], an N:M pattern without
// 0 < N < M, or M not dividing the `cols` inputs. Called before any work starts.
void validate_target(const SparsityTarget& target, int64_t cols, const std::string& name);

// The values of a 2-D weight [rows = out, cols = in] as f32; throws mcw::Error for another
// rank, an empty matrix or a NaN/infinite value (scores must be totally ordered).
std::vector<float> weight_values(const Tensor& w);

int64_t pruned_count(double sparsity, int64_t count);  // round(sparsity · count)

// keep[i] = 0 for the `prune` smallest of scores[0..n), 1 for the rest (see counting rule).
template <class T>
void keep_largest(const T* scores, int64_t n, int64_t prune, uint8_t* keep);

// Row by row (per-output sparsity), in parallel: each row of `cols` loses
// pruned_count(sparsity, cols) weights.
template <class T>
void select_per_row(const T* scores, int64_t rows, int64_t cols, double sparsity, uint8_t* keep,
                    const CancelToken* cancel);

// Which weights a score is compared with (the Wanda paper's "comparison group"): the whole
// matrix, or only the other weights of the same output row (every row loses the same share).
enum class PruneScope { PerLayer, PerRow };

// keep[i] for scores [rows, cols] under `target`: N:M groups (which are always within a row,
// so `scope` is ignored), else the smallest scores of each row or of the whole matrix.
template <class T>
void select_kept(const T* scores, int64_t rows, int64_t cols, const SparsityTarget& target,
                 PruneScope scope, uint8_t* keep, const CancelToken* cancel);

// Bit per weight, 1 = kept, as CompressedTensor::mask stores it.
std::vector<uint8_t> pack_mask(const uint8_t* keep, size_t n);

// A Dense CompressedTensor: `values` with the pruned weights set to zero, the bitmask, and
// nm_n/nm_m when the target is an N:M pattern.
CompressedTensor pruned_tensor(std::string name, int64_t rows, int64_t cols,
                               std::vector<float> values, const std::vector<uint8_t>& keep,
                               const SparsityTarget& target);

}  // namespace mcw
