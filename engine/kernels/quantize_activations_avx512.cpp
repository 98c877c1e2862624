// The int8 rounding of one block of activations (block_gemv.h: quantize_activations) on
// AVX-512: the same values as the scalar loop, bit for bit — the scale comes from the same
// max |x|, each product v·id is one multiplication, and lround's half-away-from-zero is
// rebuilt from truncation (no AVX-512 rounding mode rounds ties away from zero). Blocks with
// a non-finite value stay on the scalar loop (their outputs are NaN anyway).
#include <cfloat>
#include <cstdint>

#include "engine/kernels/quantize_activations_isa.h"
#include "engine/kernels/simd.h"  // immintrin.h, without GCC 12's false warnings in it

namespace mcw::block_detail {

#define MCW_Q512 __attribute__((target("avx512f,avx512bw,avx512vl")))

MCW_Q512 bool block_amax_avx512(const float* v, int64_t n, float& amax) {
  const __m512 big = _mm512_set1_ps(FLT_MAX);
  __m512 m = _mm512_setzero_ps();
  __mmask16 finite = 0xffff;
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(v + i));
    finite &= _mm512_cmp_ps_mask(a, big, _CMP_LE_OQ);  // false for inf and NaN
    m = _mm512_max_ps(m, a);
  }
  amax = _mm512_reduce_max_ps(m);
  return finite == 0xffff;
}

MCW_Q512 void block_round_avx512(const float* v, int64_t n, float id, int8_t* q, int16_t* qsum16) {
  const __m512 scale = _mm512_set1_ps(id), half = _mm512_set1_ps(0.5f);
  const __m512 one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(v + i), scale);
    const __m512 t = _mm512_roundscale_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(p, t));  // |p − trunc p|, exact
    const __mmask16 up = _mm512_cmp_ps_mask(frac, half, _CMP_GE_OQ);
    const __m512 away = _mm512_mask_mov_ps(one, _mm512_cmp_ps_mask(p, zero, _CMP_LT_OQ), minus_one);
    const __m512i r = _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, away));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(r));
    qsum16[i / 16] = int16_t(_mm512_reduce_add_epi32(r));
  }
}

}  // namespace mcw::block_detail
