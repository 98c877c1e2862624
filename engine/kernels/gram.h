// Products with a calibration Hessian H = XᵀX, which is symmetric: only the 256 × 256
// tiles on and above its diagonal are multiplied (half the work of a general GEMM), each
// tile by one task, and sums are carried in f64.
//   accumulate_gram       : G += XᵀX        (building LayerStats, GPTQ/SparseGPT Hessians)
//   weighted_square_norm  : tr(M·H·Mᵀ)       (output error of a weight change ΔW, through H)
// Both read X or M in f32 and H in f64 as LayerStats keeps it; neither needs a c × c f32
// buffer. Work runs in the caller's task arena (oneTBB); the result does not depend on the
// number of threads.
#pragma once
#include <cstdint>

namespace mcw {

// G[c,c] += XᵀX for X[n,c] (leading dimension ldx >= c). Each tile is formed in f32 over
// 256 rows at a time and added to G in f64, so rounding does not grow with n. The sums are
// bitwise those of adding matmul_at over the same 256-row chunks to G, mirrored tiles
// included. ldx < c throws std::invalid_argument.
void accumulate_gram(const float* X, int64_t ldx, int64_t n, int64_t c, double* G);

// tr(M·H·Mᵀ) = Σ_r m_r·H·m_rᵀ for M [rows, cols] (f32) and a symmetric H [cols, cols]
// (f64, row-major; only its upper triangle is read). With H = XᵀX this is ‖X·Mᵀ‖²: the
// output energy of M on the inputs X. Each tile of H is rounded to f32 for the product;
// the per-tile sums are f64 and added in a fixed order.
double weighted_square_norm(const float* M, int64_t rows, int64_t cols, const double* H);

}  // namespace mcw
