// Driver of the GPTQ/AWQ small-m product (column_packed_gemv.h): checks, the choice of SIMD
// path (column_packed_isa.h) and the split over units of outputs.
#include "engine/kernels/column_packed_gemv.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <stdexcept>

#include "engine/kernels/column_packed_isa.h"
#include "engine/kernels/cpu_features.h"

namespace mcw {

bool gemv_column_packed(const ColumnPackedCodes& w, const float* X, int64_t ldx, float* Y,
                        int64_t ldy, int64_t m, const float* bias, bool accumulate) {
  if (m < 0 || m > kColumnPackedMaxM) throw std::invalid_argument("gemv_column_packed: m outside [0, 8]");
  if (ldx < w.in || ldy < w.out) throw std::invalid_argument("gemv_column_packed: leading dimension too small");
  const CpuFeatures& f = cpu_features();
  if (f.level < SimdLevel::Avx2) return false;
  const int64_t lanes = f.level == SimdLevel::Avx512 ? 16 : 8;
  const bool scales_ok = w.group_size > 0 && (w.scale_dtype == DType::F16 || w.scale_dtype == DType::F32);
  const bool readable =
      scales_ok && (w.awq ? w.bits == 4 && w.out % 8 == 0 && w.in % w.group_size == 0 && !w.g_idx
                          : (w.bits == 2 || w.bits == 4 || w.bits == 8) && w.out % lanes == 0 &&
                                w.in % (32 / w.bits) == 0);
  if (!readable) return false;
  if (m == 0 || w.out == 0) return true;
  const column_detail::UnitsFn units_fn =
      lanes == 16 ? column_detail::units_avx512 : column_detail::units_avx2;
  // GPTQ: tasks of up to 64 units (long runs of each qweight row), two or more per thread.
  // AWQ: one line per task.
  const int64_t units = w.awq ? (w.out / 8 + lanes - 1) / lanes : w.out / lanes;
  const int64_t grain =
      w.awq ? 1 : std::clamp<int64_t>(units / (2 * tbb::this_task_arena::max_concurrency()), 1, 64);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, units, grain), [&](const tbb::blocked_range<int64_t>& r) {
    units_fn(w, X, ldx, Y, ldy, m, r.begin(), r.end(), bias, accumulate);
  });
  return true;
}

}  // namespace mcw
