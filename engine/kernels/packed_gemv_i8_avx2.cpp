// The AVX2 integer-dot Affine product on vpmaddubsw (packed_gemv_i8_256.inc), for AVX2 CPUs
// without a 256-bit vpdpbusd. Functions carry the target attribute, so the file builds with
// the baseline flags and only runs when cpu_features() says so.
#include "engine/kernels/packed_gemv_isa.h"

#if defined(__x86_64__)
#define MCW_I8_NS maddubs
#define MCW_I8_TARGET "avx2,fma,f16c"
#define MCW_I8_ENTRY affine_i8_avx2
#include "engine/kernels/packed_gemv_i8_256.inc"
#else
namespace mcw::packed_detail {
void affine_i8_avx2(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y) {
  affine_i8_generic(w, x, r0, r1, y);
}
}  // namespace mcw::packed_detail
#endif
