// TEMPORARY placeholder with the agreed API; replaced by the optimised kernels branch.
#pragma once
#include <cstdint>
namespace mcw {
void matmul_wt(const float* X, const float* W, float* Y, int64_t m, int64_t n, int64_t k,
               const float* bias = nullptr, bool accumulate = false);
void matmul(const float* A, const float* B, float* C, int64_t m, int64_t n, int64_t k,
            bool accumulate = false);
void matmul_at(const float* A, const float* B, float* C, int64_t m, int64_t n, int64_t k,
               bool accumulate = false);
}  // namespace mcw
