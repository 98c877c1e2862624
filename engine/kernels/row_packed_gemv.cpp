// Driver of the compressed-tensors row-packed small-m product (row_packed_gemv.h): checks,
// the activations in line order, the choice of SIMD path (row_packed_isa.h), the split
// over rows.
#include "engine/kernels/row_packed_gemv.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <stdexcept>
#include <vector>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/row_packed_isa.h"
#include "engine/kernels/stored_matmul.h"

namespace mcw {
namespace {

// x rearranged per line of `lanes` words: entry (line, k, l) = x[line·lanes·per + per·l + k].
void line_order(const float* x, int64_t in, int per, int lanes, float* out) {
  const int64_t span = int64_t(lanes) * per;
  for (int64_t b = 0; b < in / span; ++b)
    for (int k = 0; k < per; ++k)
      for (int l = 0; l < lanes; ++l) out[b * span + lanes * k + l] = x[b * span + per * l + k];
}

// x rounded to int8 per block in the order the int8 kernels meet the codes: per span of
// `words` words (one load: 8 on AVX2, 16 on AVX-512) and plane p of their bytes, byte j of
// word l is input per·l + planes·j + p.
std::vector<PackedActivations> row_activations(const float* X, int64_t ldx, int64_t m,
                                               const RowPackedCodes& w, int64_t block,
                                               int words) {
  const int per = 32 / w.bits, planes = 8 / w.bits, span = words * per;
  return quantize_activations_to(X, ldx, m, w.in, block, [&](int64_t i) {
    const int64_t r = i % span, l = r / per, k = r % per;
    return i - r + 4 * words * (k % planes) + 4 * l + k / planes;
  });
}

}  // namespace

bool gemv_row_packed(const RowPackedCodes& w, const TensorDecoder& params, const float* X,
                     int64_t ldx, float* Y, int64_t ldy, int64_t m, const float* bias,
                     bool accumulate) {
  if (m < 0) throw std::invalid_argument("gemv_row_packed: negative m");
  if (ldx < w.in || ldy < w.out)
    throw std::invalid_argument("gemv_row_packed: leading dimension too small");
  const CpuFeatures& f = cpu_features();
  if (f.level < SimdLevel::Avx2) return false;
  const int per = (w.bits == 2 || w.bits == 4 || w.bits == 8) ? 32 / w.bits : 0;
  const auto readable = [&](int lanes) {
    const int64_t span = int64_t(lanes) * per;
    return per && w.group_size > 0 && w.in % span == 0 &&
           (w.group_size % span == 0 || (span % w.group_size == 0 && w.group_size % per == 0)) &&
           w.in % w.group_size == 0 && w.words == w.in / per &&
           (w.scale_dtype == DType::F16 || w.scale_dtype == DType::F32);
  };
  // The f32 paths: lines of 16 words where AVX-512 runs and the rows fill them, else 8 (AVX2
  // runs on every AVX-512 CPU). The int8 kernels choose their own width below.
  const int lanes = f.level == SimdLevel::Avx512 && readable(16) ? 16 : 8;
  if (!readable(lanes)) return false;
  if (m == 0 || w.out == 0) return true;
  if (int8_activations()) {
    // Loads of 16 words with AVX-512 VNNI where activation blocks hold whole ones, else 8.
    const bool vnni = f.level == SimdLevel::Avx512 && f.avx512vnni && lanes == 16 &&
                      activation_block_in(w.group_size, 16 * per);
    const int words = vnni ? 16 : 8;
    if (const int64_t block = activation_block_in(w.group_size, words * per)) {  // whole loads
      const std::vector<PackedActivations> x = row_activations(X, ldx, m, w, block, words);
      const row_detail::I8RowsFn rows =
          vnni ? row_detail::rows_i8_avx512_vnni : row_detail::rows_i8_avx2;
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, w.out, 4),
                        [&](const tbb::blocked_range<int64_t>& r) {
                          rows(w, params, x.data(), m, Y, ldy, r.begin(), r.end(), bias,
                               accumulate);
                        });
      return true;
    }
  }
  if (m > kRowPackedMaxM) return false;  // the f32 path's large m: tiles (stored_matmul.h)
  std::vector<float> xs(size_t(m * w.in));
  for (int64_t i = 0; i < m; ++i) line_order(X + i * ldx, w.in, per, lanes, xs.data() + i * w.in);
  const row_detail::RowsFn rows = lanes == 16 ? row_detail::rows_avx512 : row_detail::rows_avx2;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, w.out, 4),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      rows(w, params, xs.data(), Y, ldy, m, r.begin(), r.end(), bias, accumulate);
                    });
  return true;
}

}  // namespace mcw
