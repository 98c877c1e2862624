// Portable path of the 16-bit-weight small-m product: one row of W at a time, widened
// through engine/core/half.h, with f32 sums; the reference the SIMD paths are tested against.
#include "engine/core/half.h"
#include "engine/kernels/half_gemv_isa.h"

namespace mcw::half_detail {
namespace {

constexpr int kMaxM = 8;

template <float (*Widen)(uint16_t)>
void rows(const Rows& a, int64_t r0, int64_t r1, const Out& y) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* w = a.w + r * a.ldw;
    float acc[kMaxM] = {};
    for (int64_t p = 0; p < a.k; ++p) {
      const float wv = Widen(w[p]);
      for (int64_t i = 0; i < a.m; ++i) acc[i] += wv * a.x[i * a.ldx + p];
    }
    for (int64_t i = 0; i < a.m; ++i) y.store(i, r, acc[i]);
  }
}

}  // namespace

const HalfGemvIsa& half_isa_generic() {
  static const HalfGemvIsa isa{"generic", rows<bf16_to_f32>, rows<f16_to_f32>};
  return isa;
}

}  // namespace mcw::half_detail
