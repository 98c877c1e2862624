// The output error of a linear layer measured through its input statistics: for inputs X
// (rows are samples) and H = XᵀX, ‖X·Mᵀ‖² = tr(M·H·Mᵀ), so the relative output error of a
// compressed weight Ŵ is tr(ΔW·H·ΔWᵀ) / tr(W·H·Wᵀ) with ΔW = W − Ŵ: the sensitivity
// scan's layer-local proxy, read off the calibration statistics without running the model.
#pragma once
#include <cstdint>
#include <vector>

namespace mcw {

// tr(M·H·Mᵀ) for M [rows, cols] and a symmetric H [cols, cols], both f32 row-major: f32
// GEMM over blocks of rows (memory of one block × cols), summed in f64.
double weighted_square_norm(const float* M, int64_t rows, int64_t cols, const float* H);

// H = XᵀX in f64 (as LayerStats keeps it) to f32, for weighted_square_norm.
std::vector<float> to_f32_matrix(const std::vector<double>& h);

}  // namespace mcw
