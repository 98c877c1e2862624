#include "engine/search/output_error.h"

#include <algorithm>

#include "engine/kernels/gemm.h"

namespace mcw {

double weighted_square_norm(const float* M, int64_t rows, int64_t cols, const float* H) {
  // Blocks of rows keep the product's scratch small next to a weight (down_proj of an 8 B
  // model: 4096 × 14336) while leaving each GEMM big enough for all cores.
  constexpr int64_t kRows = 256;
  std::vector<float> mh(size_t(std::min(rows, kRows) * cols));
  double sum = 0;
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const int64_t n = std::min(kRows, rows - r0);
    const float* m = M + r0 * cols;
    matmul(m, H, mh.data(), n, cols, cols);
    for (int64_t i = 0; i < n * cols; ++i) sum += double(mh[size_t(i)]) * double(m[i]);
  }
  return sum;
}

std::vector<float> to_f32_matrix(const std::vector<double>& h) {
  return std::vector<float>(h.begin(), h.end());
}

}  // namespace mcw
