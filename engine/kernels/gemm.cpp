// Driver shared by every SIMD path of the f32 GEMM: argument checks, packing, cache
// blocking and the split over threads. The per-path inner loops live in gemm_<isa>.cpp.
//
// Large products follow the usual Goto/BLIS scheme. For each depth block of kc:
//   1. all of A[:, block] is packed once into mr-row panels shared by every task;
//   2. tasks take column tiles of C (all rows, tn columns; rows are split too only when
//      there are too few columns to keep the threads busy), pack their kc×tn slice of B
//      into nr-column panels and run the register-blocked kernel over mc-row chunks.
// Splitting over columns first means neither operand is packed twice. Small m with W in
// PyTorch layout (decode) skips packing altogether: rows of W are streamed once, split
// over n, which is what bounds a GEMV by memory bandwidth.
#include "engine/kernels/gemm.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "engine/kernels/cpu_features.h"
#include "engine/kernels/gemm_isa.h"

namespace mcw {
namespace {

using gemm_detail::GemmIsa;

// Up to this many rows, matmul_wt takes dot products against unpacked W.
constexpr int64_t kSmallM = 8;
// Below this many multiply-adds a product runs on the calling thread.
constexpr int64_t kSerialFlops = int64_t(1) << 18;

const GemmIsa& current_isa() {
  switch (cpu_features().level) {
    case SimdLevel::Avx512: return gemm_detail::gemm_isa_avx512();
    case SimdLevel::Avx2: return gemm_detail::gemm_isa_avx2();
    default: return gemm_detail::gemm_isa_generic();
  }
}

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
int64_t ceil_div(int64_t x, int64_t by) { return (x + by - 1) / by; }

void check_args(const char* fn, int64_t m, int64_t n, int64_t k,
                std::initializer_list<std::pair<int64_t, int64_t>> ld_and_min) {
  if (m < 0 || n < 0 || k < 0)
    throw std::invalid_argument(std::string(fn) + ": negative matrix size");
  for (auto [ld, min] : ld_and_min)
    if (ld < min) throw std::invalid_argument(std::string(fn) + ": leading dimension too small");
}

// A matrix seen through strides: element (r, c) is at p[r * rs + c * cs].
struct Operand {
  const float* p;
  int64_t rs, cs;
};

// 64-byte aligned scratch that grows and is kept per thread, so that packing buffers cost
// no allocation (and no page faults) on repeated calls. A thread can re-enter while it
// waits inside parallel_for (it may run a caller's task that calls matmul again), so a
// buffer in use is never handed out twice: the inner call gets a private one.
class Scratch {
 public:
  float* reserve(size_t count) {
    if (count > cap_) {
      buf_.reset(static_cast<float*>(::operator new[](count * sizeof(float), kAlign)));
      cap_ = count;
    }
    return buf_.get();
  }
  bool busy = false;

 private:
  static constexpr std::align_val_t kAlign{64};
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, kAlign); }
  };
  std::unique_ptr<float[], Free> buf_;
  size_t cap_ = 0;
};

class ScratchLease {
 public:
  ScratchLease(Scratch& s, size_t count) {
    Scratch* use = &s;
    if (s.busy) use = (private_ = std::make_unique<Scratch>()).get();
    else (owner_ = &s)->busy = true;
    data_ = use->reserve(count);
  }
  ~ScratchLease() {
    if (owner_) owner_->busy = false;
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  float* data() const { return data_; }

 private:
  Scratch* owner_ = nullptr;
  std::unique_ptr<Scratch> private_;
  float* data_ = nullptr;
};

// One panel whose width runs across source rows (s_w != 1):
// dst[p * w + r] = src[r * s_w + p * s_k] for r < valid, zero for valid <= r < w.
void pack_panel(const GemmIsa& isa, const float* src, int64_t s_w, int64_t s_k, int64_t valid,
                int w, int64_t kc, float* dst) {
  if (s_k == 1 && isa.pack_transposed) return isa.pack_transposed(src, s_w, valid, w, kc, dst);
  if (valid < w)
    for (int64_t p = 0; p < kc; ++p)
      for (int64_t r = valid; r < w; ++r) dst[p * w + r] = 0.0f;
  // Transposing copy, four source rows at a time so that each write fills 16 bytes.
  int64_t r = 0;
  for (; r + 4 <= valid; r += 4) {
    const float* s0 = src + r * s_w;
    const float* s1 = s0 + s_w;
    const float* s2 = s1 + s_w;
    const float* s3 = s2 + s_w;
    float* d = dst + r;
    for (int64_t p = 0; p < kc; ++p) {
      d[p * w] = s0[p * s_k];
      d[p * w + 1] = s1[p * s_k];
      d[p * w + 2] = s2[p * s_k];
      d[p * w + 3] = s3[p * s_k];
    }
  }
  for (; r < valid; ++r)
    for (int64_t p = 0; p < kc; ++p) dst[p * w + r] = src[r * s_w + p * s_k];
}

// Panels [q0, q1) of an operand with `total` rows along the panel width. A contiguous
// panel dimension is copied a whole source row at a time across all the panels, which
// reads memory in order however far apart the rows are.
void pack_panels(const GemmIsa& isa, const float* src, int64_t s_w, int64_t s_k, int64_t total,
                 int w, int64_t kc, int64_t q0, int64_t q1, float* dst) {
  if (s_w != 1) {
    for (int64_t q = q0; q < q1; ++q)
      pack_panel(isa, src + q * w * s_w, s_w, s_k, std::min<int64_t>(w, total - q * w), w, kc,
                 dst + q * w * kc);
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    const float* row = src + p * s_k;
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t valid = std::min<int64_t>(w, total - q * w);
      float* d = dst + q * w * kc + p * w;
      std::memcpy(d, row + q * w, size_t(valid) * sizeof(float));
      for (int64_t r = valid; r < w; ++r) d[r] = 0.0f;
    }
  }
}

// Runs fn(i) for i < count, in parallel when that pays.
template <class Fn>
void for_each_index(int64_t count, bool parallel, const Fn& fn) {
  if (!parallel || count <= 1) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, 1),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t i = r.begin(); i < r.end(); ++i) fn(i);
                    });
}

// C[m,n] (+)= A·B (+ bias) with A(i,p) and B(p,j) given by strides; m, n, k > 0.
void gemm_packed(const GemmIsa& isa, Operand a, Operand b, float* C, int64_t ldc, int64_t m,
                 int64_t n, int64_t k, const float* bias, bool accumulate,
                 bool allow_parallel = true) {
  const int64_t mr = isa.mr, nr = isa.nr;
  const bool parallel = allow_parallel && double(m) * double(n) * double(k) >= kSerialFlops;
  const int64_t threads = parallel ? tbb::this_task_arena::max_concurrency() : 1;

  // Column tiles first (no operand packed twice), rows only if columns run out.
  int64_t tn = std::min(round_up(n, nr), isa.nc);
  int64_t tm = round_up(m, mr);
  const int64_t want_tiles = parallel ? 4 * threads : 1;
  while (ceil_div(m, tm) * ceil_div(n, tn) < want_tiles) {
    if (tn > nr) tn = round_up(tn / 2, nr);
    else if (tm > isa.mc) tm = round_up(tm / 2, mr);
    else break;
  }
  const int64_t tiles_n = ceil_div(n, tn), tiles_m = ceil_div(m, tm);
  const int64_t kc_max = std::min(k, isa.kc);
  const int64_t a_panels = ceil_div(m, mr);

  static thread_local Scratch a_scratch, b_scratch;
  const ScratchLease a_pack(a_scratch, size_t(a_panels * mr * kc_max));

  for (int64_t p0 = 0; p0 < k; p0 += isa.kc) {
    const int64_t kc = std::min(isa.kc, k - p0);
    const float* a_block = a.p + p0 * a.cs;
    constexpr int64_t kPanelsPerTask = 8;
    for_each_index(ceil_div(a_panels, kPanelsPerTask), parallel, [&](int64_t g) {
      pack_panels(isa, a_block, a.rs, a.cs, m, int(mr), kc, g * kPanelsPerTask,
                  std::min(a_panels, (g + 1) * kPanelsPerTask), a_pack.data());
    });
    const bool load_c = accumulate || p0 > 0;
    const float* bias_now = p0 == 0 ? bias : nullptr;
    for_each_index(tiles_m * tiles_n, parallel, [&](int64_t t) {
      const int64_t i0 = (t / tiles_n) * tm, j0 = (t % tiles_n) * tn;
      const int64_t mt = std::min(tm, m - i0), nt = std::min(tn, n - j0);
      const ScratchLease b_lease(b_scratch, size_t(round_up(nt, nr) * kc));
      float* b_pack = b_lease.data();
      const float* b_block = b.p + p0 * b.rs + j0 * b.cs;
      pack_panels(isa, b_block, b.cs, b.rs, nt, int(nr), kc, 0, ceil_div(nt, nr), b_pack);
      for (int64_t ic = 0; ic < mt; ic += isa.mc) {
        const int64_t i = i0 + ic;
        isa.block(a_pack.data() + i * kc, b_pack, C + i * ldc + j0, ldc,
                  std::min(isa.mc, mt - ic), nt, kc, load_c, bias_now ? bias_now + j0 : nullptr);
      }
    });
  }
}

// k == 0: the product is empty, leaving bias (or nothing) to add.
void empty_product(float* C, int64_t ldc, int64_t m, int64_t n, const float* bias,
                   bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const float b = bias ? bias[j] : 0.0f;
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + b : b;
    }
}

// Small-m matmul_wt: rows of W split over threads in groups of 8 outputs.
void rows_dot_parallel(const GemmIsa& isa, const float* X, int64_t ldx, const float* W,
                       int64_t ldw, float* Y, int64_t ldy, int64_t m, int64_t n, int64_t k,
                       const float* bias, bool accumulate) {
  constexpr int64_t kGroup = 8;
  const int64_t groups = ceil_div(n, kGroup);
  auto run = [&](int64_t g0, int64_t g1) {
    isa.rows_dot(X, ldx, W, ldw, Y, ldy, m, g0 * kGroup, std::min(n, g1 * kGroup), k, bias,
                 accumulate);
  };
  if (double(m) * double(n) * double(k) < kSerialFlops) return run(0, groups);
  // At least ~64 KiB of W per task so that scheduling stays negligible next to streaming.
  const int64_t grain = std::max<int64_t>(1, (int64_t(16) << 10) / (kGroup * k));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, groups, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { run(r.begin(), r.end()); });
}

}  // namespace

void matmul_wt_strided(const float* X, int64_t ldx, const float* W, int64_t ldw, float* Y,
                       int64_t ldy, int64_t m, int64_t n, int64_t k, const float* bias,
                       bool accumulate) {
  check_args("matmul_wt", m, n, k, {{ldx, k}, {ldw, k}, {ldy, n}});
  if (m == 0 || n == 0) return;
  if (k == 0) return empty_product(Y, ldy, m, n, bias, accumulate);
  const GemmIsa& isa = current_isa();
  if (m <= kSmallM)
    return rows_dot_parallel(isa, X, ldx, W, ldw, Y, ldy, m, n, k, bias, accumulate);
  gemm_packed(isa, {X, ldx, 1}, {W, 1, ldw}, Y, ldy, m, n, k, bias, accumulate);
}

void matmul_strided(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                    int64_t ldc, int64_t m, int64_t n, int64_t k, bool accumulate) {
  check_args("matmul", m, n, k, {{lda, k}, {ldb, n}, {ldc, n}});
  if (m == 0 || n == 0) return;
  if (k == 0) return empty_product(C, ldc, m, n, nullptr, accumulate);
  gemm_packed(current_isa(), {A, lda, 1}, {B, ldb, 1}, C, ldc, m, n, k, nullptr, accumulate);
}

void matmul_at_strided(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                       int64_t ldc, int64_t m, int64_t n, int64_t k, bool accumulate) {
  check_args("matmul_at", m, n, k, {{lda, m}, {ldb, n}, {ldc, n}});
  if (m == 0 || n == 0) return;
  if (k == 0) return empty_product(C, ldc, m, n, nullptr, accumulate);
  gemm_packed(current_isa(), {A, 1, lda}, {B, ldb, 1}, C, ldc, m, n, k, nullptr, accumulate);
}

void gemm_detail::matmul_serial(const float* a, int64_t a_rs, int64_t a_cs, const float* b,
                                int64_t b_rs, int64_t b_cs, float* C, int64_t ldc, int64_t m,
                                int64_t n, int64_t k) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  gemm_packed(current_isa(), {a, a_rs, a_cs}, {b, b_rs, b_cs}, C, ldc, m, n, k, nullptr, false,
              false);
}

void matmul_wt(const float* X, const float* W, float* Y, int64_t m, int64_t n, int64_t k,
               const float* bias, bool accumulate) {
  matmul_wt_strided(X, k, W, k, Y, n, m, n, k, bias, accumulate);
}

void matmul(const float* A, const float* B, float* C, int64_t m, int64_t n, int64_t k,
            bool accumulate) {
  matmul_strided(A, k, B, n, C, n, m, n, k, accumulate);
}

void matmul_at(const float* A, const float* B, float* C, int64_t m, int64_t n, int64_t k,
               bool accumulate) {
  matmul_at_strided(A, m, B, n, C, n, m, n, k, accumulate);
}

}  // namespace mcw
