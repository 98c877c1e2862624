// Portable path of the f32 GEMM: plain C++ written so that the compiler can vectorise it
// for the baseline instruction set (fixed-width inner loops without reductions across
// lanes, since float reductions are not reassociated without -ffast-math).
#include "engine/kernels/gemm_isa.h"

namespace mcw::gemm_detail {
namespace {

// 4×8: 8 SSE accumulators. Wider tiles make GCC 12 vectorise across the wrong loop and
// run 5× slower (measured), so keep this shape.
constexpr int kMr = 4, kNr = 8;
constexpr int kLanes = 8;         // independent partial sums per dot product

// out = a·b for one register tile. Kept out of line with local accumulators: inlined into
// generic_block, GCC 12 vectorises it about 3× worse (measured).
__attribute__((noinline)) void micro_tile(const float* a, const float* b, int64_t kc,
                                          float* out) {
  float acc[kMr][kNr] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* ap = a + p * kMr;
    const float* bp = b + p * kNr;
    for (int i = 0; i < kMr; ++i) {
      const float ai = ap[i];
      for (int j = 0; j < kNr; ++j) acc[i][j] += ai * bp[j];
    }
  }
  for (int i = 0; i < kMr; ++i)
    for (int j = 0; j < kNr; ++j) out[i * kNr + j] = acc[i][j];
}

void generic_block(const float* Ap, const float* Bp, float* C, int64_t ldc, int64_t mc,
                   int64_t nc, int64_t kc, bool load_c, const float* bias) {
  for (int64_t j0 = 0; j0 < nc; j0 += kNr) {
    const float* b = Bp + j0 * kc;
    const int64_t nrem = nc - j0 < kNr ? nc - j0 : kNr;
    for (int64_t i0 = 0; i0 < mc; i0 += kMr) {
      const float* a = Ap + i0 * kc;
      float acc[kMr][kNr];
      micro_tile(a, b, kc, &acc[0][0]);
      const int64_t mrem = mc - i0 < kMr ? mc - i0 : kMr;
      for (int64_t i = 0; i < mrem; ++i) {
        float* c = C + (i0 + i) * ldc + j0;
        for (int64_t j = 0; j < nrem; ++j) {
          float v = acc[i][j];
          if (bias) v += bias[j0 + j];
          c[j] = load_c ? c[j] + v : v;
        }
      }
    }
  }
}

float dot(const float* x, const float* w, int64_t k) {
  float part[kLanes] = {};
  int64_t p = 0;
  for (; p + kLanes <= k; p += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] += x[p + l] * w[p + l];
  float s = 0;
  for (; p < k; ++p) s += x[p] * w[p];
  for (int l = 0; l < kLanes; ++l) s += part[l];
  return s;
}

void generic_rows_dot(const float* X, int64_t ldx, const float* W, int64_t ldw, float* Y,
                      int64_t ldy, int64_t m, int64_t n0, int64_t n1, int64_t k,
                      const float* bias, bool accumulate) {
  for (int64_t j = n0; j < n1; ++j) {
    const float b = bias ? bias[j] : 0.0f;
    for (int64_t i = 0; i < m; ++i) {
      float& y = Y[i * ldy + j];
      const float v = dot(X + i * ldx, W + j * ldw, k) + b;
      y = accumulate ? y + v : v;
    }
  }
}

}  // namespace

const GemmIsa& gemm_isa_generic() {
  static const GemmIsa isa{"generic", kMr, kNr, 256, 128, 256, generic_block, nullptr,
                                generic_rows_dot};
  return isa;
}

}  // namespace mcw::gemm_detail
