// Driver of the 16-bit-weight small-m product: checks, the split over rows of W, the
// choice of SIMD path. See half_gemv.h.
#include "engine/kernels/half_gemv.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <stdexcept>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/half_gemv_isa.h"

namespace mcw {
namespace {

using half_detail::HalfGemvIsa;

// Below this many multiply-adds the product runs on the calling thread.
constexpr int64_t kSerialFlops = int64_t(1) << 18;
// Weight bytes per task: enough that scheduling is negligible next to streaming them,
// small enough that a task's rows stay in L2 while each group of x rows passes over them.
constexpr int64_t kTaskBytes = int64_t(64) << 10;  // tasks get 32–64 KiB

const HalfGemvIsa& current_isa() {
  switch (cpu_features().level) {
    case SimdLevel::Avx512: return half_detail::half_isa_avx512();
    case SimdLevel::Avx2: return half_detail::half_isa_avx2();
    default: return half_detail::half_isa_generic();
  }
}

}  // namespace

void gemv_wt_half(HalfFormat format, const float* X, int64_t ldx, const uint16_t* W,
                  int64_t ldw, float* Y, int64_t ldy, int64_t m, int64_t n, int64_t k,
                  const float* bias, bool accumulate) {
  if (m < 0 || m > kHalfGemvMaxM || n < 0 || k < 0)
    throw std::invalid_argument("gemv_wt_half: m must be in [0, 8], sizes non-negative");
  if (ldx < k || ldw < k || ldy < n)
    throw std::invalid_argument("gemv_wt_half: leading dimension too small");
  if (m == 0 || n == 0) return;
  const HalfGemvIsa& isa = current_isa();
  const auto kernel = format == HalfFormat::BF16 ? isa.bf16 : isa.f16;
  const half_detail::Rows a{W, ldw, k, X, ldx, m};
  const half_detail::Out y{Y, ldy, bias, accumulate};
  if (double(m) * double(n) * double(k) < double(kSerialFlops)) return kernel(a, 0, n, y);
  const int64_t grain = std::max<int64_t>(1, kTaskBytes / (2 * std::max<int64_t>(k, 1)));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { kernel(a, r.begin(), r.end(), y); });
}

}  // namespace mcw
