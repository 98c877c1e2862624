// Driver of the block-weight small-m product: checks, the activations' quantisation, the
// split over rows of W, the choice of SIMD path. See block_gemv.h.
#include "engine/kernels/block_gemv.h"

#include "engine/kernels/quantize_activations_isa.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <stdexcept>
#include <vector>

#include "engine/kernels/block_gemv_isa.h"
#include "engine/kernels/cpu_features.h"

namespace mcw {
namespace {

// Below this many multiply-adds the product runs on the calling thread.
constexpr int64_t kSerialFlops = int64_t(1) << 18;
// Weight bytes per task: a few rows of a 4096-wide Q4_K matrix, enough that scheduling is
// negligible next to streaming them.
constexpr int64_t kTaskBytes = int64_t(32) << 10;
// With more than kBlockGemvMaxM rows of x: weight bytes per task that stay in L2 while every
// chunk of rows of x passes over them.
constexpr int64_t kTileBytes = int64_t(256) << 10;

bool is_kquant(DType t) {
  return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K ||
         t == DType::Q6_K;
}

block_detail::RowsFn rows_for(DType t) {
  const CpuFeatures& f = cpu_features();
  if (f.level == SimdLevel::Avx512) {
    if (is_kquant(t)) return block_detail::rows_kquant_avx512;
    if (f.avx512vnni) return block_detail::rows_legacy_vnni;
  }
  if (f.level >= SimdLevel::Avx2) return block_detail::rows_avx2;
  return block_detail::rows_generic;
}

}  // namespace

bool block_gemv_reads(DType t) { return is_block_type(t); }

bool block_gemv_accelerated(DType t) {
  return block_gemv_reads(t) && rows_for(t) != block_detail::rows_generic;
}

int64_t activation_block(DType t) { return dtype_info(t).block >= 256 ? 256 : kActivationBlock; }

int64_t activation_block_in(int64_t group, int64_t step) {
  if (group <= 0 || step <= 0) return 0;
  for (int64_t b = 256 / step * step; b >= step; b -= step)
    if (group % b == 0) return b;
  return 0;
}

void quantize_activations(const float* x, int64_t k, int64_t block, Int8Activations& out) {
  if (block <= 0 || block % 32 || k % block)
    throw std::invalid_argument("quantize_activations: k must be whole blocks of 32·n values");
  out.block = block;
  out.q.resize(size_t(k));
  out.d.resize(size_t(k / block));
  out.d16.resize(size_t(k / 16));
  out.sum16.resize(size_t(k / 16));
  out.qsum16.resize(size_t(k / 16));
  const bool avx512 = cpu_features().level == SimdLevel::Avx512;  // the same bytes, faster
  for (int64_t c = 0; c < k / block; ++c) {
    const float* v = x + c * block;
    int8_t* q = out.q.data() + c * block;
    int16_t* qsum = out.qsum16.data() + c * block / 16;  // |sum| <= 16·127
    float amax = 0;
    bool finite = avx512 && block_detail::block_amax_avx512(v, block, amax);
    if (!avx512) {
      finite = true;
      for (int64_t i = 0; i < block; ++i) {
        amax = std::max(amax, std::fabs(v[i]));
        finite = finite && std::isfinite(v[i]);
      }
    }
    // A non-finite input makes the block's scale NaN, so the outputs are NaN as the f32
    // product's would be; a block too small for 1 / d to be finite counts as zeros.
    float d = finite ? amax / 127.0f : std::nanf(""), id = d > 0 ? 1.0f / d : 0.0f;
    if (!std::isfinite(id)) id = 0;
    if (finite && id == 0) d = 0;
    out.d[size_t(c)] = d;
    if (avx512 && finite) {
      block_detail::block_round_avx512(v, block, id, q, qsum);
    } else {
      for (int64_t i = 0; i < block; ++i) q[i] = int8_t(std::lround(v[i] * id));
      for (int64_t g = 0; g < block / 16; ++g) {
        int32_t s = 0;
        for (int i = 0; i < 16; ++i) s += q[16 * g + i];
        qsum[g] = int16_t(s);
      }
    }
    for (int64_t g = 0; g < block / 16; ++g) {  // of the rounded values: the product is Σ w·x̂
      out.d16[size_t(c * block / 16 + g)] = d;
      out.sum16[size_t(c * block / 16 + g)] = d * float(qsum[g]);
    }
  }
  out.d32.resize(size_t(k / 32)), out.sum32.resize(size_t(k / 32));
  for (int64_t j = 0; j < k / 32; ++j) {
    out.d32[size_t(j)] = out.d16[size_t(2 * j)];
    out.sum32[size_t(j)] = out.sum16[size_t(2 * j)] + out.sum16[size_t(2 * j + 1)];
  }
  out.q_order.clear();
}

void order_activations(DType t, Int8Activations& x) {
  // Pieces of 16 values in the order a type's codes come out of their bytes (see header).
  static constexpr int kNibble[4] = {0, 2, 1, 3};
  static constexpr int kK4[16] = {0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15};
  std::span<const int> order;
  switch (t) {
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::IQ4_NL:
    case DType::IQ4_XS:
      order = kNibble;
      break;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
      order = kK4;
      break;
    default:
      x.q_order.clear();
      return;
  }
  const int64_t k = int64_t(x.q.size()), period = 16 * int64_t(order.size());
  x.q_order.resize(size_t(k));
  int64_t c = 0;
  for (; c + period <= k; c += period)
    for (size_t p = 0; p < order.size(); ++p)
      std::copy_n(x.q.data() + c + 16 * order[p], 16, x.q_order.data() + c + 16 * int64_t(p));
  std::copy(x.q.begin() + c, x.q.end(), x.q_order.begin() + c);  // a last 32: as it is
}

void matmul_wt_blocks(DType t, const float* X, int64_t ldx, const void* W, float* Y, int64_t ldy,
                      int64_t m, int64_t n, int64_t k, const float* bias, bool accumulate) {
  if (!block_gemv_reads(t)) throw std::invalid_argument("matmul_wt_blocks: not a block type");
  if (m < 0 || n < 0 || k < 0) throw std::invalid_argument("matmul_wt_blocks: negative size");
  const auto row_bytes = dtype_bytes(t, uint64_t(k));
  if (!row_bytes || k % activation_block(t))
    throw std::invalid_argument("matmul_wt_blocks: rows are not whole blocks");
  if (ldx < k || ldy < n)
    throw std::invalid_argument("matmul_wt_blocks: leading dimension too small");
  if (m == 0 || n == 0) return;
  const block_detail::RowsFn rows = rows_for(t);
  // Only the AVX-512 paths read the codes in their bytes' order (q_order).
  const bool ordered =
      rows == block_detail::rows_kquant_avx512 || rows == block_detail::rows_legacy_vnni;
  std::vector<Int8Activations> x(static_cast<size_t>(m));
  const int64_t block = activation_block(t);
  tbb::parallel_for(int64_t(0), m, [&](int64_t i) {
    quantize_activations(X + i * ldx, k, block, x[size_t(i)]);
    if (ordered) order_activations(t, x[size_t(i)]);
  });
  const auto* w = static_cast<const uint8_t*>(W);
  // Rows [r0, r1) of W against every row of x, kBlockGemvMaxM rows at a time: with more
  // than that the rows of W are revisited per chunk, so a task's rows stay in cache.
  auto task = [&](int64_t r0, int64_t r1) {
    for (int64_t i0 = 0; i0 < m; i0 += kBlockGemvMaxM) {
      const block_detail::Rows a{
          t, w, int64_t(*row_bytes), k, x.data() + i0, std::min(kBlockGemvMaxM, m - i0)};
      rows(a, r0, r1, block_detail::Out{Y + i0 * ldy, ldy, bias, accumulate});
    }
  };
  if (double(m) * double(n) * double(k) < double(kSerialFlops)) return task(0, n);
  const int64_t task_bytes = m <= kBlockGemvMaxM ? kTaskBytes : kTileBytes;
  const int64_t grain =
      std::max<int64_t>(1, task_bytes / std::max<int64_t>(int64_t(*row_bytes), 1));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { task(r.begin(), r.end()); });
}

}  // namespace mcw
