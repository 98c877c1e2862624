// Summary statistics of a tensor's values (any dtype, dequantised on the fly), computed
// in parallel chunks with oneTBB and SIMD reductions. Non-finite values are counted and
// left out of min/max/mean/std so one NaN does not hide the rest of the picture.
#pragma once
#include <cstdint>

#include "engine/core/progress.h"
#include "engine/core/tensor.h"

namespace mcw {

struct TensorStats {
  uint64_t count = 0;      // all values
  uint64_t finite = 0;     // values that entered min/max/mean/std
  uint64_t zeros = 0;      // exact zeros (±0)
  uint64_t nonfinite = 0;  // NaN and ±Inf
  double min = 0, max = 0, mean = 0, std = 0;  // population std; 0 when finite == 0
};

TensorStats tensor_stats(const Tensor& t, const CancelToken* cancel = nullptr);

// The per-chunk kernels, exposed for tests of each SIMD path.
struct ChunkStats {
  uint64_t finite = 0, zeros = 0;
  double sum = 0;
  float min = 0, max = 0;  // valid only when finite > 0
};
ChunkStats chunk_stats_f32(const float* x, size_t n);
double chunk_sq_dev_f32(const float* x, size_t n, double mean);  // Σ (x-mean)² over finite x

}  // namespace mcw
