// Driver of the AVX-512 BF16 GEMM: checks, the bf16 copy of X, the split over threads.
// See bf16_dot_gemm.h.
#include "engine/kernels/bf16_dot_gemm.h"

#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <memory>
#include <new>
#include <stdexcept>

#include "engine/core/half.h"
#include "engine/kernels/cpu_features.h"

namespace mcw {
namespace {

// W rows per task: ~256 KiB of weight, read from memory once per task and reused from
// cache by every block of x rows.
constexpr int64_t kTaskWeightBytes = int64_t(256) << 10;

// 64-byte aligned bf16 scratch kept per thread and grown on demand, so that repeated calls
// (one per linear layer) cost no allocation.
struct Bf16Scratch {
  struct Free {
    void operator()(uint16_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<uint16_t[], Free> buf;
  size_t cap = 0;
  uint16_t* reserve(size_t count) {
    if (count > cap) {
      buf.reset(static_cast<uint16_t*>(::operator new[](count * 2, std::align_val_t{64})));
      cap = count;
    }
    return buf.get();
  }
};

}  // namespace

bool bf16_dot_gemm_available() {
#if defined(__x86_64__)
  return cpu_features().avx512bf16 && cpu_features().level == SimdLevel::Avx512;
#else
  return false;
#endif
}

void matmul_wt_bf16_dot(const float* X, int64_t ldx, const uint16_t* W, int64_t ldw, float* Y,
                        int64_t ldy, int64_t m, int64_t n, int64_t k, const float* bias,
                        bool accumulate) {
  if (!bf16_dot_gemm_available())
    throw std::logic_error("matmul_wt_bf16_dot: this CPU (or SIMD level) has no AVX-512 BF16");
  if (m < 0 || n < 0 || k < 0) throw std::invalid_argument("matmul_wt_bf16_dot: negative size");
  if (ldx < k || ldw < k || ldy < n)
    throw std::invalid_argument("matmul_wt_bf16_dot: leading dimension too small");
  if (m == 0 || n == 0) return;
#if defined(__x86_64__)
  // X in bf16, rows padded with zeros to whole 32-value vectors (so the kernel reads x
  // unmasked), rounded once here rather than once per tile. Thread-local: the caller's
  // thread owns it for the whole call; tasks only read it.
  static thread_local Bf16Scratch scratch;
  const int64_t ldxb = std::max<int64_t>(32, (k + 31) / 32 * 32);  // k = 0 too
  // A nested call on this thread (a task of an outer parallel loop) must not reuse the
  // buffer its caller still reads: it gets its own.
  static thread_local bool busy = false;
  Bf16Scratch own;
  Bf16Scratch& s = busy ? own : scratch;
  uint16_t* xb = s.reserve(size_t(std::max<int64_t>(m * ldxb, 1)));
  struct Lease {
    bool& b;
    bool was;
    ~Lease() { b = was; }
  } lease{busy, busy};
  busy = true;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, m, 16), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) {
      f32_to_bf16_row(X + i * ldx, xb + i * ldxb, size_t(k));
      std::fill(xb + i * ldxb + k, xb + (i + 1) * ldxb, uint16_t(0));
    }
  });
  // Tasks take groups of 4 W rows (the kernel's register tile), ~256 KiB of weight each.
  constexpr int64_t kGroup = 4;
  const int64_t groups = (n + kGroup - 1) / kGroup;
  const int64_t grain =
      std::max<int64_t>(1, kTaskWeightBytes / (2 * kGroup * std::max<int64_t>(k, 1)));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, groups, grain),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      bf16_dot_detail::block(xb, ldxb, W, ldw, k, Y, ldy, 0, m, r.begin() * kGroup,
                                             std::min(n, r.end() * kGroup), bias, accumulate);
                    });
#endif
}

}  // namespace mcw
