// Driver of the block-weight small-m product: checks, the activations' quantisation, the
// split over rows of W, the choice of SIMD path. See block_gemv.h.
#include "engine/kernels/block_gemv.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/kernels/block_gemv_isa.h"
#include "engine/kernels/cpu_features.h"

namespace mcw {
namespace {

using block_detail::BlockGemvIsa;

// Below this many multiply-adds the product runs on the calling thread.
constexpr int64_t kSerialFlops = int64_t(1) << 18;
// Weight bytes per task: a few rows of a 4096-wide Q4_K matrix, enough that scheduling is
// negligible next to streaming them.
constexpr int64_t kTaskBytes = int64_t(32) << 10;

const BlockGemvIsa& current_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.level == SimdLevel::Avx512 && f.avx512vnni) return block_detail::block_isa_avx512_vnni();
  return block_detail::block_isa_generic();
}

}  // namespace

bool block_gemv_reads(DType t) { return is_block_type(t); }

void quantize_activations(const float* x, int64_t k, Int8Activations& out) {
  if (k % kActivationBlock)
    throw std::invalid_argument("quantize_activations: k must be a multiple of 32");
  out.q.resize(size_t(k));
  out.d.resize(size_t(k / kActivationBlock));
  out.sum16.resize(size_t(k / 16));
  for (int64_t c = 0; c < k / kActivationBlock; ++c) {
    const float* v = x + c * kActivationBlock;
    float amax = 0;
    for (int i = 0; i < kActivationBlock; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    out.d[size_t(c)] = d;
    for (int i = 0; i < kActivationBlock; ++i)
      out.q[size_t(c * kActivationBlock + i)] = int8_t(std::lround(v[i] * id));
    for (int h = 0; h < 2; ++h) {  // of the rounded values: the product is Σ w·x̂ exactly
      int32_t s = 0;
      for (int i = 0; i < 16; ++i) s += out.q[size_t(c * kActivationBlock + 16 * h + i)];
      out.sum16[size_t(2 * c + h)] = d * float(s);
    }
  }
}

void gemv_wt_blocks(DType t, const float* X, int64_t ldx, const void* W, float* Y, int64_t ldy,
                    int64_t m, int64_t n, int64_t k, const float* bias, bool accumulate) {
  if (!block_gemv_reads(t)) throw std::invalid_argument("gemv_wt_blocks: not a block type");
  if (m < 0 || m > kBlockGemvMaxM || n < 0 || k < 0)
    throw std::invalid_argument("gemv_wt_blocks: m must be in [0, 8], sizes non-negative");
  const auto row_bytes = dtype_bytes(t, uint64_t(k));
  if (!row_bytes || k % kActivationBlock)
    throw std::invalid_argument("gemv_wt_blocks: rows are not whole blocks");
  if (ldx < k || ldy < n) throw std::invalid_argument("gemv_wt_blocks: leading dimension too small");
  if (m == 0 || n == 0) return;
  Int8Activations x[kBlockGemvMaxM];
  for (int64_t i = 0; i < m; ++i) quantize_activations(X + i * ldx, k, x[i]);
  const BlockGemvIsa& isa = current_isa();
  const block_detail::Rows a{t, static_cast<const uint8_t*>(W), int64_t(*row_bytes), k, x, m};
  const block_detail::Out y{Y, ldy, bias, accumulate};
  if (double(m) * double(n) * double(k) < double(kSerialFlops)) return isa.rows(a, 0, n, y);
  const int64_t grain = std::max<int64_t>(1, kTaskBytes / std::max<int64_t>(a.row_bytes, 1));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { isa.rows(a, r.begin(), r.end(), y); });
}

}  // namespace mcw
