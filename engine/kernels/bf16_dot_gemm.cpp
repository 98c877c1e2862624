// Driver of the bf16-weight GEMM: checks, the bf16 copy of X, AMX or AVX-512 BF16, the
// split over threads.
// See bf16_dot_gemm.h.
#include "engine/kernels/bf16_dot_gemm.h"

#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>
#include <memory>
#include <new>
#include <stdexcept>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

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

// MCW_AMX=0 starts with AMX off (to compare the two kernels in whole runs).
std::atomic<bool> g_amx_on{[] {
  const char* v = std::getenv("MCW_AMX");
  return !(v && std::string_view(v) == "0");
}()};

// CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE; then the OS's permission.
bool amx_hardware() {
#if defined(__x86_64__)
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24)))
      return false;
    return bf16_dot_detail::amx_bf16_permitted();
  }();
  return ok;
#else
  return false;
#endif
}

}  // namespace

bool amx_bf16_usable() { return g_amx_on && bf16_dot_gemm_available() && amx_hardware(); }
void set_amx_bf16(bool on) { g_amx_on = on; }

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
  static thread_local Bf16Scratch scratch, tiles_scratch;
  const int64_t ldxb = std::max<int64_t>(32, (k + 31) / 32 * 32);  // k = 0 too
  // A nested call on this thread (a task of an outer parallel loop) must not reuse the
  // buffer its caller still reads: it gets its own.
  static thread_local bool busy = false;
  Bf16Scratch own, own_tiles;
  Bf16Scratch& s = busy ? own : scratch;
  Bf16Scratch& t = busy ? own_tiles : tiles_scratch;
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
  if (amx_bf16_usable() && m >= 16 && n % 16 == 0 && k % 32 == 0 && k > 0) {
    // X once more in AMX's tile layout; tasks take panels of 32 W rows (two tiles).
    const int64_t blocks = (m + 15) / 16;
    uint16_t* xt = t.reserve(size_t(blocks * 16 * ldxb));
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, blocks), [&](const tbb::blocked_range<int64_t>& r) {
      bf16_dot_detail::pack_x_tiles(xb, ldxb, r.begin() * 16, std::min(m, r.end() * 16), xt);
    });
    const int64_t panels = n / 32 + (n % 32 ? 1 : 0);
    const int64_t grain = std::max<int64_t>(1, kTaskWeightBytes / (2 * 32 * k));
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, panels, grain), [&](const tbb::blocked_range<int64_t>& r) {
      bf16_dot_detail::amx_block(xt, ldxb, m, W, ldw, Y, ldy, r.begin() * 32, std::min(n, r.end() * 32), bias,
                                 accumulate);
    });
    return;
  }
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
