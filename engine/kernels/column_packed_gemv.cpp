// Driver of the GPTQ/AWQ small-m product (column_packed_gemv.h): checks, the choice of SIMD
// path (column_packed_isa.h) and the split over units of outputs.
#include "engine/kernels/column_packed_gemv.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "engine/kernels/block_gemv.h"
#include "engine/kernels/column_packed_isa.h"
#include "engine/kernels/cpu_features.h"
#include "engine/kernels/stored_matmul.h"

namespace mcw {
namespace {

// The int8 path's activation block (activation_block_in), or 0 with act-order.
int64_t column_activation_block(const ColumnPackedCodes& w) {
  return w.g_idx || w.in % w.group_size ? 0 : activation_block_in(w.group_size);
}

// x rounded to int8 per block in the order the int8 kernels meet the codes: GPTQ, per word
// row and plane p of its bytes, the inputs p, p + planes, ... of the word; AWQ, natural.
std::vector<PackedActivations> column_activations(const float* X, int64_t ldx, int64_t m,
                                                  const ColumnPackedCodes& w, int64_t block) {
  const int per = 32 / w.bits, planes = 8 / w.bits;
  return quantize_activations_to(X, ldx, m, w.in, block, [&](int64_t i) {
    if (w.awq) return i;
    const int64_t word = i / per, k = i % per;
    return 4 * (word * planes + k % planes) + k / planes;
  });
}

}  // namespace

bool gemv_column_packed(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y,
                        int64_t ldy, int64_t m, const float* bias, bool accumulate) {
  if (m < 0) throw std::invalid_argument("gemv_column_packed: negative m");
  if (ldx < w.in || ldy < w.out)
    throw std::invalid_argument("gemv_column_packed: leading dimension too small");
  const CpuFeatures& f = cpu_features();
  if (f.level < SimdLevel::Avx2) return false;
  const bool scales_ok =
      w.group_size > 0 && (w.scale_dtype == DType::F16 || w.scale_dtype == DType::F32);
  const auto readable = [&](int64_t lanes) {
    return scales_ok &&
           (w.awq ? w.bits == 4 && w.out % 8 == 0 && w.in % w.group_size == 0 && !w.g_idx
                  : (w.bits == 2 || w.bits == 4 || w.bits == 8) && w.out % lanes == 0 &&
                        w.in % (32 / w.bits) == 0);
  };
  // The f32 paths: 16 lanes where AVX-512 runs and the outputs fill them, else 8 (AVX2 runs
  // on every AVX-512 CPU). The int8 kernels choose their own width below.
  const int64_t lanes = f.level == SimdLevel::Avx512 && readable(16) ? 16 : 8;
  if (!readable(lanes)) return false;
  if (m == 0 || w.out == 0) return true;
  const int64_t threads = tbb::this_task_arena::max_concurrency();
  if (int8_activations())
    if (const int64_t block = column_activation_block(w)) {
      const std::vector<PackedActivations> x = column_activations(X, ldx, m, w, block);
      // Tasks of up to 64 units (GPTQ: 8 or 16 outputs, AWQ: 128) at small m, long runs of each
      // qweight row; with more rows of x, chunks of 8 pass over a task's 8 units (GPTQ:
      // ~0.5 MB at in = 14336) while they stay in cache.
      // GPTQ: 16 outputs a unit with AVX-512 VNNI, else 8.
      const bool vnni = f.level == SimdLevel::Avx512 && f.avx512vnni;
      const bool gptq16 = vnni && !w.awq && w.out % 16 == 0;
      const column_detail::I8UnitsFn gptq_units =
          gptq16 ? column_detail::units_i8_avx512_vnni : column_detail::units_i8_avx2;
      const column_detail::I8UnitsFn awq_units =
          vnni ? column_detail::units_i8_awq_avx512_vnni : column_detail::units_i8_awq_avx2;
      const int64_t units = w.awq ? (w.out / 8 + 15) / 16 : w.out / (gptq16 ? 16 : 8);
      const int64_t grain =
          std::clamp<int64_t>(units / (2 * threads), 1, m <= kColumnPackedMaxM ? 64 : 8);
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, units, grain), [&](const tbb::blocked_range<int64_t>& r) {
            if (w.awq)  // takes every row of x, in chunks inside its block loop
              return awq_units(w, x.data(), m, Y, ldy, r.begin(), r.end(), bias, accumulate);
            for (int64_t i0 = 0; i0 < m; i0 += kColumnPackedMaxM)
              gptq_units(w, x.data() + i0, std::min(kColumnPackedMaxM, m - i0), Y + i0 * ldy, ldy,
                         r.begin(), r.end(), bias, accumulate);
          });
      return true;
    }
  if (m > kColumnPackedMaxM) return false;  // the f32 path's large m: tiles (stored_matmul.h)
  const column_detail::UnitsFn units_fn =
      lanes == 16 ? column_detail::units_avx512 : column_detail::units_avx2;
  // GPTQ: tasks of up to 64 units (long runs of each qweight row), two or more per thread.
  // AWQ: one line per task.
  const int64_t units = w.awq ? (w.out / 8 + lanes - 1) / lanes : w.out / lanes;
  const int64_t grain = w.awq ? 1 : std::clamp<int64_t>(units / (2 * threads), 1, 64);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, units, grain),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      units_fn(w, X, ldx, Y, ldy, m, r.begin(), r.end(), bias, accumulate);
                    });
  return true;
}

}  // namespace mcw
