#include "engine/compress/block_gptq.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/compress/parallel_rows.h"
#include "engine/core/block_code_grid.h"
#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/kernels/gemm.h"

namespace mcw {

BlockGptqResult quantize_gptq_blocks(const float* w, int64_t rows, int64_t cols,
                                     const LayerStats& stats, DType type,
                                     const BlockGptqOptions& opt, const CancelToken* cancel,
                                     const std::string& name) {
  const DTypeInfo& info = dtype_info(type);
  if (!has_code_grid(type))
    throw Error(name, "gptq cannot use blocks of type " + std::string(info.name) + " as its grid");
  const int64_t bv = info.block;
  if (rows <= 0 || cols <= 0 || cols % bv != 0)
    throw Error(name, "gptq on " + std::string(info.name) + " needs columns in whole blocks of " +
                          std::to_string(bv) + ", the weight has " + std::to_string(cols));
  if (stats.cols != cols || stats.xtx.size() != size_t(cols) * size_t(cols))
    throw Error(name, "gptq calibration statistics are for " + std::to_string(stats.cols) +
                          " input columns, the weight has " + std::to_string(cols));
  for (double v : stats.xtx)
    if (!std::isfinite(v)) throw Error(name, "gptq calibration statistics contain NaN or inf");

  BlockGptqResult out;
  std::vector<uint8_t> dead(static_cast<size_t>(cols));
  std::vector<float> importance(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    const double d = stats.xtx[size_t(j * cols + j)];
    dead[size_t(j)] = d == 0.0;
    importance[size_t(j)] = float(d);
  }
  std::vector<float> U;
  out.percdamp = factor_dampened(stats.xtx, cols, {}, dead, opt.percdamp, opt.factor_tolerance, U,
                                 &out.factor, cancel, name, "gptq");
  std::vector<float> wk(size_t(rows * cols));
  // The legacy types' weighted fit weighs by the row's mean square (as llama-quantize
  // --imatrix sees the row); the sweep fits one block at a time, so it is passed in: that
  // of the weights before the sweep.
  std::vector<float> row_ms(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    float ss = 0;  // as the encoder sums a whole row: in float, left to right
    for (int64_t c = 0; c < cols; ++c) {
      const float v = dead[size_t(c)] ? 0.0f : w[r * cols + c];
      wk[size_t(r * cols + c)] = v;
      ss += v * v;
    }
    row_ms[size_t(r)] = ss / float(cols);
  }

  const size_t block_bytes = size_t(info.block_bytes), row_bytes = size_t(cols / bv) * block_bytes;
  out.blocks.resize(size_t(rows) * row_bytes);
  // Lazy blocks hold whole format blocks, so a block's fit sees all its columns updated.
  const int64_t B = std::min(cols, std::max<int64_t>(bv, 128));
  std::vector<float> negerr(size_t(rows * B));
  for (int64_t i1 = 0; i1 < cols; i1 += B) {
    if (cancel) cancel->throw_if_cancelled();
    const int64_t i2 = std::min(i1 + B, cols), count = i2 - i1;
    float* const w_all = wk.data();
    float* const ne_all = negerr.data();
    const float* const u = U.data();
    const float* const imp = opt.weighted_fit ? importance.data() : nullptr;
    const float* const ms = row_ms.data();
    std::byte* const blocks = out.blocks.data();
    parallel_rows(
        rows, [=](int64_t r0, int64_t r1) __attribute__((always_inline)) {
          std::vector<CodeGrid> grids(static_cast<size_t>(bv));
          std::vector<int> codes(static_cast<size_t>(bv));
          for (int64_t r = r0; r < r1; ++r) {
            float* const row = w_all + r * cols;
            float* const ne = ne_all + r * B;
            for (int64_t k = i1; k < i2; ++k) {
              const int64_t at = k % bv;
              std::byte* const blk = blocks + size_t(r) * row_bytes + size_t(k / bv) * block_bytes;
              if (at == 0) {
                from_f32_weighted(type, row + k, blk, size_t(bv), imp ? imp + k : nullptr, ms[r]);
                block_code_grids(type, blk, grids.data());
              }
              const float v = row[k];
              const int q = grids[size_t(at)].nearest(v);
              codes[size_t(at)] = q;
              const float e = (v - grids[size_t(at)].value(q)) / u[k * cols + k];
              ne[k - i1] = -e;
              const float* uk = u + k * cols;
              for (int64_t j = k + 1; j < i2; ++j) row[j] -= e * uk[j];
              if (at == bv - 1) set_block_codes(type, blk, codes.data());
            }
          }
        });
    if (i2 < cols)
      matmul_strided(negerr.data(), B, U.data() + i1 * cols + i2, cols, wk.data() + i2, cols, rows,
                     cols - i2, count, /*accumulate=*/true);
  }
  return out;
}

}  // namespace mcw
