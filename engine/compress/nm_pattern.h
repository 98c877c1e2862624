// N:M semi-structured sparsity: in every group of M consecutive input weights of a row
// (columns [g·M, (g+1)·M)), exactly N are kept. 2:4 is what sparse tensor cores and the
// 2:4 sparse GEMV run; 4:8 is the looser variant. Ties follow the counting rule of
// engine/compress/sparsity.h (lower index pruned first).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/core/progress.h"

namespace mcw {

// keep[0..m) for one group: the n largest of scores[0..m) are kept.
template <class T>
void select_nm_group(const T* scores, int n, int m, uint8_t* keep);

// Every group of every row of scores [rows, cols] (m divides cols), rows in parallel.
template <class T>
void select_nm(const T* scores, int64_t rows, int64_t cols, int n, int m, uint8_t* keep,
               const CancelToken* cancel);

// True when the bitmask (1 = kept, CompressedTensor::mask) keeps exactly n weights in
// every group of m consecutive columns of every row.
bool mask_satisfies_nm(const std::vector<uint8_t>& mask, int64_t rows, int64_t cols, int n, int m);

}  // namespace mcw
