#include "engine/compress/gptq.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/compress/linalg_f64.h"
#include "engine/core/error.h"
#include "engine/kernels/gemm.h"

namespace mcw {

static void check_gptq(const std::string& name, int64_t rows, int64_t cols, const LayerStats& stats,
                       const GptqOptions& opt) {
  check_affine_bits(name, "gptq", opt.bits);
  check_clip_search(name, "gptq", opt.clip);
  if (rows <= 0 || cols <= 0)
    throw Error(name, "gptq needs a non-empty weight, got " + std::to_string(rows) + "x" +
                          std::to_string(cols));
  if (stats.cols != cols || stats.xtx.size() != size_t(cols) * size_t(cols))
    throw Error(name, "gptq calibration statistics are for " + std::to_string(stats.cols) +
                          " input columns (xtx of " + std::to_string(stats.xtx.size()) +
                          " values), the weight has " + std::to_string(cols));
  if (!(opt.percdamp >= 0.0) || !std::isfinite(opt.percdamp))
    throw Error(name, "gptq percdamp must be a finite number >= 0");
  if (opt.block_size <= 0) throw Error(name, "gptq block size must be positive");
  for (double v : stats.xtx)
    if (!std::isfinite(v)) throw Error(name, "gptq calibration statistics contain NaN or inf");
}

CompressedTensor quantize_gptq(const float* w, int64_t rows, int64_t cols, const LayerStats& stats,
                               const GptqOptions& opt, const CancelToken* cancel,
                               std::string name) {
  check_gptq(name, rows, cols, stats, opt);
  const int64_t gs = opt.group_size == 0 ? cols : opt.group_size;
  check_group_size(name, "gptq", gs, cols);
  const int64_t G = cols / gs, B = std::min(opt.block_size, cols);

  std::vector<double> h(stats.xtx);
  std::vector<float> wk(w, w + rows * cols);  // working weights, permuted columns
  for (int64_t j = 0; j < cols; ++j)
    if (h[size_t(j * cols + j)] == 0.0) {
      h[size_t(j * cols + j)] = 1.0;
      for (int64_t r = 0; r < rows; ++r) wk[size_t(r * cols + j)] = 0.0f;
    }

  const bool static_groups = opt.static_groups && G > 1;
  std::vector<AffineParams> params(size_t(rows * G));
  if (static_groups)
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, rows), [&](const tbb::blocked_range<int64_t>& rr) {
          for (int64_t r = rr.begin(); r < rr.end(); ++r)
            for (int64_t g = 0; g < G; ++g)
              params[size_t(r * G + g)] = affine_params_search(
                  wk.data() + r * cols + g * gs, gs, 1, nullptr, opt.bits, opt.symmetric, opt.clip);
        });

  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (opt.act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
      return h[size_t(a * cols + a)] > h[size_t(b * cols + b)];
    });
    permute_symmetric(h.data(), cols, perm);
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      float* wr = wk.data() + r * cols;
      for (int64_t j = 0; j < cols; ++j) row[size_t(j)] = wr[perm[size_t(j)]];
      std::copy(row.begin(), row.end(), wr);
    }
  }

  double mean_diag = 0;
  for (int64_t j = 0; j < cols; ++j) mean_diag += h[size_t(j * cols + j)];
  const double damp = opt.percdamp * mean_diag / double(cols);
  for (int64_t j = 0; j < cols; ++j) h[size_t(j * cols + j)] += damp;

  // In place, so that the largest moment holds the caller's XᵀX, this f64 copy and the
  // f32 factor (20 bytes per Hessian entry, not 36).
  if (!inverse_cholesky_upper_in_place(h.data(), cols, cancel))
    throw Error(name, "gptq: the dampened Hessian is not positive definite; raise percdamp (now " +
                          std::to_string(opt.percdamp) + ")");
  std::vector<float> u(h.begin(), h.end());
  std::vector<double>().swap(h);

  std::vector<uint8_t> qperm(size_t(rows * cols));
  std::vector<float> negerr(size_t(rows * B));
  for (int64_t i1 = 0; i1 < cols; i1 += B) {
    if (cancel) cancel->throw_if_cancelled();
    const int64_t i2 = std::min(i1 + B, cols), count = i2 - i1;
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows),
                      [&](const tbb::blocked_range<int64_t>& rr) {
                        std::vector<float> group(static_cast<size_t>(gs));
                        for (int64_t r = rr.begin(); r < rr.end(); ++r) {
                          float* row = wk.data() + r * cols;
                          float* ne = negerr.data() + r * B;
                          for (int64_t i = 0; i < count; ++i) {
                            const int64_t k = i1 + i;
                            if (!static_groups && k % gs == 0) {
                              // The group's current weights: columns past this block still lack
                              // this block's updates so far, which are added here.
                              for (int64_t c = k; c < k + gs; ++c) {
                                float v = row[c];
                                if (c >= i2)
                                  for (int64_t p = i1; p < k; ++p)
                                    v += ne[p - i1] * u[size_t(p * cols + c)];
                                group[size_t(c - k)] = v;
                              }
                              params[size_t(r * G + k / gs)] = affine_params_search(
                                  group.data(), gs, 1, nullptr, opt.bits, opt.symmetric, opt.clip);
                            }
                            const int64_t g = static_groups ? perm[size_t(k)] / gs : k / gs;
                            const AffineParams& p = params[size_t(r * G + g)];
                            const float v = row[k];
                            const uint8_t q = affine_code(v, p, opt.bits);
                            qperm[size_t(r * cols + k)] = q;
                            const float e = (v - affine_value(q, p)) / u[size_t(k * cols + k)];
                            ne[i] = -e;
                            const float* uk = u.data() + k * cols;
                            for (int64_t j = k + 1; j < i2; ++j) row[j] -= e * uk[j];
                          }
                        }
                      });
    if (i2 < cols)
      matmul_strided(negerr.data(), B, u.data() + i1 * cols + i2, cols, wk.data() + i2, cols, rows,
                     cols - i2, count, /*accumulate=*/true);
  }

  CompressedTensor out;
  out.name = std::move(name);
  out.rows = rows, out.cols = cols;
  out.coding = WeightCoding::Affine;
  out.bits = opt.bits, out.group_size = gs, out.symmetric = opt.symmetric;
  std::vector<uint8_t> q(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      q[size_t(r * cols + perm[size_t(k)])] = qperm[size_t(r * cols + k)];
  out.codes = pack_codes(q.data(), q.size(), opt.bits);
  out.scales.resize(params.size());
  if (!opt.symmetric) out.zeros.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    out.scales[i] = params[i].scale;
    if (!opt.symmetric) out.zeros[i] = params[i].zero;
  }
  if (opt.act_order && !static_groups && G > 1) {
    out.g_idx.resize(size_t(cols));
    for (int64_t k = 0; k < cols; ++k) out.g_idx[size_t(perm[size_t(k)])] = int32_t(k / gs);
  }
  return out;
}

}  // namespace mcw
