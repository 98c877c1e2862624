// TEMPORARY placeholder; replaced by the optimised kernels branch.
#include "engine/kernels/gemm.h"
#include <tbb/parallel_for.h>
namespace mcw {
void matmul_wt(const float* X, const float* W, float* Y, int64_t m, int64_t n, int64_t k,
               const float* bias, bool accumulate) {
  tbb::parallel_for(int64_t(0), n, [&](int64_t j) {
    for (int64_t i = 0; i < m; ++i) {
      float acc = bias ? bias[j] : 0.f;
      for (int64_t p = 0; p < k; ++p) acc += X[i * k + p] * W[j * k + p];
      Y[i * n + j] = accumulate ? Y[i * n + j] + acc : acc;
    }
  });
}
void matmul(const float* A, const float* B, float* C, int64_t m, int64_t n, int64_t k, bool accumulate) {
  tbb::parallel_for(int64_t(0), m, [&](int64_t i) {
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += A[i * k + p] * B[p * n + j];
      C[i * n + j] = accumulate ? C[i * n + j] + acc : acc;
    }
  });
}
void matmul_at(const float* A, const float* B, float* C, int64_t m, int64_t n, int64_t k, bool accumulate) {
  tbb::parallel_for(int64_t(0), m, [&](int64_t i) {
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += A[p * m + i] * B[p * n + j];
      C[i * n + j] = accumulate ? C[i * n + j] + acc : acc;
    }
  });
}
}  // namespace mcw
