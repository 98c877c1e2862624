// The AVX2 level's integer-dot Affine product on a 256-bit vpdpbusd (packed_gemv_i8_256.inc):
// once in the VEX form for AVX-VNNI CPUs (Alder Lake and later client cores, Sierra
// Forest, Zen 5), once in the EVEX form for AVX-512 VNNI CPUs capped at AVX2. One source,
// two encodings of the same instruction: a CPU with only AVX-512 VNNI (as the machines MCW
// is tested on) runs the EVEX instance, and with it every line the VEX one runs.
#include "engine/kernels/packed_gemv_isa.h"

#if defined(__x86_64__)
#define MCW_I8_NS avxvnni
#define MCW_I8_TARGET "avx2,fma,f16c,avxvnni"
#define MCW_I8_ENTRY affine_i8_avxvnni
#define MCW_I8_DPBUSD _mm256_dpbusd_avx_epi32
#include "engine/kernels/packed_gemv_i8_256.inc"

#define MCW_I8_NS avx512vl_vnni
#define MCW_I8_TARGET "avx2,fma,f16c,avx512f,avx512vl,avx512vnni"
#define MCW_I8_ENTRY affine_i8_avx512vl_vnni
#define MCW_I8_DPBUSD _mm256_dpbusd_epi32
#include "engine/kernels/packed_gemv_i8_256.inc"
#else
namespace mcw::packed_detail {
void affine_i8_avxvnni(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y) {
  affine_i8_generic(w, x, r0, r1, y);
}
void affine_i8_avx512vl_vnni(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1,
                             const YOut& y) {
  affine_i8_generic(w, x, r0, r1, y);
}
}  // namespace mcw::packed_detail
#endif
