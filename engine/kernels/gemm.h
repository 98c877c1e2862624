// Dense f32 matrix products for the llama forward pass and training (row-major storage).
//
// Three layouts cover a linear layer y = x·Wᵀ + b and its backward pass:
//   matmul_wt : Y[m,n] (+)= X[m,k] · W[n,k]ᵀ (+ bias[n])   forward; W as PyTorch stores it
//   matmul    : C[m,n] (+)= A[m,k] · B[k,n]                 dX = dY · W
//   matmul_at : C[m,n] (+)= A[k,m]ᵀ · B[k,n]                dW = dYᵀ · X, Hessians XᵀX
// `accumulate` adds to the existing output instead of overwriting it. k = 0 yields bias
// (or zeros, or leaves the output unchanged when accumulating); m = 0 or n = 0 writes
// nothing. Outputs must not alias inputs.
//
// Work is split over output tiles with oneTBB and so runs in the caller's task arena:
// tbb::global_control / tbb::task_arena limit the threads. The SIMD path (AVX-512,
// AVX2+FMA or portable C++) follows cpu_features().level at the time of the call.
// m = 1 (decode) and other small m with matmul_wt stream W once, split over n.
//
// The *_strided variants take leading dimensions (elements between consecutive rows) so
// that callers can work on slices such as one attention head; each must be at least the
// row length. Bad arguments (negative sizes, short leading dimensions) throw
// std::invalid_argument: they are programming errors, not bad input files.
#pragma once
#include <cstdint>

namespace mcw {

void matmul_wt(const float* X, const float* W, float* Y, int64_t m, int64_t n, int64_t k,
               const float* bias = nullptr, bool accumulate = false);
void matmul(const float* A, const float* B, float* C, int64_t m, int64_t n, int64_t k,
            bool accumulate = false);
void matmul_at(const float* A, const float* B, float* C, int64_t m, int64_t n, int64_t k,
               bool accumulate = false);

// ldx >= k, ldw >= k, ldy >= n.
void matmul_wt_strided(const float* X, int64_t ldx, const float* W, int64_t ldw, float* Y,
                       int64_t ldy, int64_t m, int64_t n, int64_t k,
                       const float* bias = nullptr, bool accumulate = false);
// lda >= k, ldb >= n, ldc >= n.
void matmul_strided(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                    int64_t ldc, int64_t m, int64_t n, int64_t k, bool accumulate = false);
// lda >= m (A is [k,m]), ldb >= n, ldc >= n.
void matmul_at_strided(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                       int64_t ldc, int64_t m, int64_t n, int64_t k, bool accumulate = false);

}  // namespace mcw
