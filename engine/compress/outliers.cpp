#include "engine/compress/outliers.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/compress/affine_quantizer.h"
#include "engine/core/error.h"
#include "engine/core/half.h"

namespace mcw {

// Re-fits the grids of the (row, group)s holding outliers to the other weights.
static void requantize_groups(CompressedTensor& q, const float* w,
                              const std::vector<uint8_t>& is_outlier, const CancelToken* cancel) {
  const int64_t rows = q.rows, cols = q.cols, G = q.groups();
  std::vector<uint8_t> codes(size_t(rows * cols));
  unpack_codes(q.codes.data(), codes.size(), q.bits, codes.data());
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, rows), [&](const tbb::blocked_range<int64_t>& rr) {
        std::vector<float> lo(static_cast<size_t>(G)), hi(static_cast<size_t>(G));
        std::vector<uint8_t> touched(static_cast<size_t>(G));
        for (int64_t r = rr.begin(); r < rr.end(); ++r) {
          if (cancel) cancel->throw_if_cancelled();
          std::fill(lo.begin(), lo.end(), 0.0f), std::fill(hi.begin(), hi.end(), 0.0f);
          std::fill(touched.begin(), touched.end(), uint8_t(0));
          for (int64_t c = 0; c < cols; ++c) {
            const size_t i = size_t(r * cols + c), g = size_t(q.group_of(c));
            if (is_outlier[i])
              touched[g] = 1;
            else
              lo[g] = std::min(lo[g], w[i]), hi[g] = std::max(hi[g], w[i]);
          }
          std::vector<AffineParams> p(static_cast<size_t>(G));
          for (int64_t g = 0; g < G; ++g)
            if (touched[size_t(g)]) {
              p[size_t(g)] = affine_params_range(lo[size_t(g)], hi[size_t(g)], q.bits, q.symmetric);
              q.scales[size_t(r * G + g)] = p[size_t(g)].scale;
              if (!q.symmetric) q.zeros[size_t(r * G + g)] = p[size_t(g)].zero;
            }
          for (int64_t c = 0; c < cols; ++c) {
            const size_t i = size_t(r * cols + c), g = size_t(q.group_of(c));
            if (touched[g]) codes[i] = affine_code(w[i], p[g], q.bits);
          }
        }
      });
  q.codes = pack_codes(codes.data(), codes.size(), q.bits);
}

// With re-fitting, what removing a group's extreme weight is worth shows in the error it
// would have on the grid of the rest of its group (SpQR's leave-one-out view): only the
// unique minimum and maximum move the range, so only they are re-scored.
static void score_extremes(const CompressedTensor& q, const float* w, const double* col_weight,
                           std::vector<double>& importance) {
  const int64_t rows = q.rows, cols = q.cols, G = q.groups();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows),
                    [&](const tbb::blocked_range<int64_t>& rr) {
                      struct Ends {
                        float lo = 0, lo2 = 0, hi = 0, hi2 = 0;
                        int64_t at_lo = -1, at_hi = -1;
                      };
                      std::vector<Ends> e(static_cast<size_t>(G));
                      for (int64_t r = rr.begin(); r < rr.end(); ++r) {
                        std::fill(e.begin(), e.end(), Ends{});
                        for (int64_t c = 0; c < cols; ++c) {
                          Ends& g = e[size_t(q.group_of(c))];
                          const float v = w[r * cols + c];
                          if (v < g.lo)
                            g.lo2 = g.lo, g.lo = v, g.at_lo = c;
                          else if (v < g.lo2)
                            g.lo2 = v;
                          if (v > g.hi)
                            g.hi2 = g.hi, g.hi = v, g.at_hi = c;
                          else if (v > g.hi2)
                            g.hi2 = v;
                        }
                        for (const Ends& g : e)
                          for (int side = 0; side < 2; ++side) {
                            const int64_t c = side ? g.at_hi : g.at_lo;
                            if (c < 0 || (side ? g.hi2 == g.hi : g.lo2 == g.lo)) continue;
                            const AffineParams p = affine_params_range(
                                side ? g.lo : g.lo2, side ? g.hi2 : g.hi, q.bits, q.symmetric);
                            const float v = w[r * cols + c];
                            const double d = double(v) - affine_round(v, p, q.bits);
                            double& imp = importance[size_t(r * cols + c)];
                            imp = std::max(imp, (col_weight ? col_weight[c] : 1.0) * d * d);
                          }
                      }
                    });
}

void add_outliers(CompressedTensor& q, const float* w, const double* col_weight,
                  const OutlierOptions& opt, const CancelToken* cancel) {
  if (q.coding != WeightCoding::Affine && q.coding != WeightCoding::Codebook)
    throw Error(q.name, "outliers need an affine or codebook quantised weight");
  if (!(opt.fraction >= 0.0 && opt.fraction <= 1.0))
    throw Error(q.name, "outlier fraction must be in [0, 1]");
  const uint64_t n = uint64_t(q.rows) * uint64_t(q.cols);
  if (n > uint64_t(UINT32_MAX))
    throw Error(q.name,
                "outlier indices are 32-bit; the weight has " + std::to_string(n) + " values");
  q.outlier_index.clear(), q.outlier_value.clear();
  const Tensor deq = q.dequantize();
  const float* wq = deq.as<float>();
  std::vector<double> importance(n);
  for (uint64_t i = 0; i < n; ++i) {
    const double d = double(w[i]) - wq[i];
    importance[i] = (col_weight ? col_weight[i % uint64_t(q.cols)] : 1.0) * d * d;
    if (!(importance[i] == importance[i])) importance[i] = INFINITY;  // NaN weights go first
  }
  const bool refit = opt.requantize && q.coding == WeightCoding::Affine;
  if (refit) score_extremes(q, w, col_weight, importance);
  if (cancel) cancel->throw_if_cancelled();
  const uint64_t k = std::min<uint64_t>(n, uint64_t(std::llround(opt.fraction * double(n))));
  if (k == 0) return;
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  auto before = [&](uint32_t a, uint32_t b) {
    return importance[a] != importance[b] ? importance[a] > importance[b] : a < b;
  };
  std::nth_element(idx.begin(), idx.begin() + int64_t(k) - 1, idx.end(), before);
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  if (refit) {
    std::vector<uint8_t> is_outlier(n, 0);
    for (uint32_t i : idx) is_outlier[i] = 1;
    requantize_groups(q, w, is_outlier, cancel);
  }
  q.outlier_index = std::move(idx);
  q.outlier_value.resize(q.outlier_index.size());
  for (size_t j = 0; j < q.outlier_index.size(); ++j)
    q.outlier_value[j] = f32_to_f16(std::clamp(w[q.outlier_index[j]], -65504.0f, 65504.0f));
}

}  // namespace mcw
