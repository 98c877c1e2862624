// Internal: what each SIMD path of the f32 GEMM provides to the shared driver in gemm.cpp.
// The driver owns threading, cache blocking and packing; a path only supplies the
// register-blocked inner loops, compiled for its instruction set.
#pragma once
#include <cstdint>

namespace mcw::gemm_detail {

// Packed operands. A block of mc rows × kc is stored as ceil(mc/mr) panels; panel q holds,
// for each p < kc, the mr values A[q·mr + r][p] (r < mr) one after another, rows past mc
// zero-filled. B (kc × nc) likewise as ceil(nc/nr) panels of nr consecutive columns.
struct GemmIsa {
  const char* name;
  int mr, nr;      // register tile of C
  int64_t kc;      // depth of one packed block (B panel nr×kc sized for L1)
  int64_t mc;      // rows of A packed per block (mc×kc sized for L2); multiple of mr
  int64_t nc;      // columns of B per task tile (kc×nc sized for L2); multiple of nr

  // C[0:mc, 0:nc] = (load_c ? C : 0) + Ap·Bp (+ bias[0:nc] when bias is not null).
  void (*block)(const float* Ap, const float* Bp, float* C, int64_t ldc, int64_t mc,
                int64_t nc, int64_t kc, bool load_c, const float* bias);

  // Optional (null: portable code). Packs one panel from a source whose depth index is
  // contiguous, i.e. a transposing copy: dst[p·w + r] = src[r·s_w + p] for r < valid,
  // zero for valid <= r < w, p < kc.
  void (*pack_transposed)(const float* src, int64_t s_w, int64_t valid, int w, int64_t kc,
                          float* dst);

  // Unpacked product for small m: for i < m and n0 <= j < n1,
  // Y[i·ldy + j] = (accumulate ? Y : 0) + dot(X row i, W row j) (+ bias[j]).
  void (*rows_dot)(const float* X, int64_t ldx, const float* W, int64_t ldw, float* Y,
                   int64_t ldy, int64_t m, int64_t n0, int64_t n1, int64_t k,
                   const float* bias, bool accumulate);
};

// For kernels that split their work over threads themselves (engine/kernels/gram.cpp):
// C[m,n] = A·B on the calling thread, with A(i,p) = a[i·a_rs + p·a_cs] and
// B(p,j) = b[p·b_rs + j·b_cs], through the current SIMD path's packed kernel.
void matmul_serial(const float* a, int64_t a_rs, int64_t a_cs, const float* b, int64_t b_rs,
                   int64_t b_cs, float* C, int64_t ldc, int64_t m, int64_t n, int64_t k);

const GemmIsa& gemm_isa_generic();
const GemmIsa& gemm_isa_avx2();    // falls back to generic off x86
const GemmIsa& gemm_isa_avx512();  // falls back to generic off x86

}  // namespace mcw::gemm_detail
