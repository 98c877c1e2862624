// AVX-512 VNNI path of the block-weight small-m product (block_gemv.h) for the types that
// are not K-quants (those have fused kernels: block_gemv_kquant_avx512.cpp). Functions carry
// the target attribute, so the file builds with the baseline flags and only runs when
// cpu_features() reports AVX-512 VNNI.
//
// Per weight row: its blocks are unpacked into 8-bit codes (vectorised for Q8_0, Q4_0,
// IQ4_NL and IQ4_XS; the portable unpacking for Q4_1, Q5_0, Q5_1), then each row of x
// passes over the codes, which stay in L1.
// 64 codes per step: one vpdpbusd gives 16 lanes of 4-product sums, four lanes per group
// of 16; the lanes are converted to f32 and scaled by the group's a·dx in one FMA, so
// groups never need a horizontal sum until the row's end.
#include <cstring>
#include <vector>

#include "engine/core/blocks.h"
#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"
#include "engine/kernels/block_gemv_isa.h"

#if defined(__x86_64__)
#include "engine/kernels/simd.h"

#define MCW_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define MCW_VNNI_INLINE MCW_VNNI inline __attribute__((always_inline))

namespace mcw::block_detail {
namespace {

MCW_VNNI_INLINE __m256i load256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
MCW_VNNI_INLINE void store256(uint8_t* p, __m256i v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
}
// 16 nibble bytes as 32 codes: low nibbles, then high ones; through `table` when given.
MCW_VNNI_INLINE void nibbles16(const uint8_t* qs, uint8_t* u, const __m128i* table) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  __m128i lo = _mm_and_si128(q, _mm_set1_epi8(0x0f));
  __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0f));
  if (table) lo = _mm_shuffle_epi8(*table, lo), hi = _mm_shuffle_epi8(*table, hi);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(u), lo);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(u + 16), hi);
}

MCW_VNNI_INLINE float half(uint16_t h) { return _cvtsh_ss(h); }


MCW_VNNI_INLINE void pair(float* a, float* b, int64_t g, float scale, float offset) {
  a[g] = a[g + 1] = scale;
  b[g] = b[g + 1] = offset;
}

// The 16 IQ4 grid values + 128 (kIq4Grid), as a byte shuffle table.
alignas(16) constexpr uint8_t kIq4Codes[16] = {1,   24,  45,  63,  79,  93,  106, 118,
                                               129, 141, 153, 166, 181, 197, 217, 241};

// True when `type` was unpacked here; false leaves it to the portable unpacking.
MCW_VNNI bool unpack_simd(DType type, const uint8_t* row, int64_t k, uint8_t* u, float* a,
                          float* b) {
  switch (type) {
    case DType::Q8_0: {
      const auto* x = reinterpret_cast<const BlockQ8_0*>(row);
      for (int64_t c = 0; c < k / 32; ++c, u += 32) {
        const float d = half(x[c].d);
        const __m256i q = load256(reinterpret_cast<const uint8_t*>(x[c].qs));
        store256(u, _mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))));  // q + 128
        pair(a, b, 2 * c, d, -128.0f * d);
      }
      return true;
    }
    case DType::Q4_0: {
      const auto* x = reinterpret_cast<const BlockQ4_0*>(row);
      for (int64_t c = 0; c < k / 32; ++c, u += 32) {
        const float d = half(x[c].d);
        nibbles16(x[c].qs, u, nullptr);
        pair(a, b, 2 * c, d, -8.0f * d);
      }
      return true;
    }
    case DType::IQ4_NL:
    case DType::IQ4_XS: {
      const __m128i table = _mm_load_si128(reinterpret_cast<const __m128i*>(kIq4Codes));
      if (type == DType::IQ4_NL) {
        const auto* x = reinterpret_cast<const BlockIQ4_NL*>(row);
        for (int64_t c = 0; c < k / 32; ++c, u += 32) {
          const float d = half(x[c].d);
          nibbles16(x[c].qs, u, &table);
          pair(a, b, 2 * c, d, -128.0f * d);
        }
        return true;
      }
      const auto* x = reinterpret_cast<const BlockIQ4_XS*>(row);
      for (int64_t c = 0; c < k / kSuperBlock; ++c) {
        const float d = half(x[c].d);
        for (int ib = 0; ib < 8; ++ib, u += 32) {
          const int ls = ((x[c].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) |
                         (((x[c].scales_h >> (2 * ib)) & 3) << 4);
          const float dl = d * float(ls - 32);
          nibbles16(x[c].qs + 16 * ib, u, &table);
          pair(a, b, 16 * c + 2 * ib, dl, -128.0f * dl);
        }
      }
      return true;
    }
    default:
      return false;
  }
}

// Lanes l of a step of 64 codes belong to group l / 4 of that step.
MCW_VNNI_INLINE __m512i group_of_lane() {
  return _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
}

// One step: 64 codes at u against 64 activations at q, groups g..g+3 (their dx at d16),
// added into acc.
MCW_VNNI_INLINE __m512 step(const uint8_t* u, const int8_t* q, const float* a, const float* d16,
                            __m512i lanes, __m512 acc) {
  const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(u),
                                        _mm512_loadu_si512(q));
  const __m128 scale = _mm_mul_ps(_mm_loadu_ps(a), _mm_loadu_ps(d16));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
                         _mm512_permutexvar_ps(lanes, _mm512_castps128_ps512(scale)), acc);
}

// The whole row is unpacked, then each row of x passes over it (measured faster than
// unpacking and consuming 256 values at a time, which costs more per chunk than it saves).
MCW_VNNI float dot_vnni(const uint8_t* u, const float* a, const float* b, const Int8Activations& x,
                        int64_t k) {
  const __m512i lanes = group_of_lane();
  const int8_t* q = x.q.data();
  const float* dx = x.d16.data();
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 128 <= k; i += 128) {  // two chains hide the FMA latency
    acc0 = step(u + i, q + i, a + i / 16, dx + i / 16, lanes, acc0);
    acc1 = step(u + i + 64, q + i + 64, a + i / 16 + 4, dx + i / 16 + 4, lanes, acc1);
  }
  if (i + 64 <= k) acc0 = step(u + i, q + i, a + i / 16, dx + i / 16, lanes, acc0), i += 64;
  float tail = 0;
  for (int64_t g = i / 16; g < k / 16; ++g) {  // k mod 64 = 32 (the 32-value types)
    int32_t s = 0;
    for (int j = 0; j < 16; ++j) s += int32_t(u[16 * g + j]) * int32_t(q[16 * g + j]);
    tail += a[g] * dx[g] * float(s);
  }
  // The offsets: Σ b·(sum of x over the group).
  const float* sums = x.sum16.data();
  __m512 off0 = _mm512_setzero_ps(), off1 = _mm512_setzero_ps();
  int64_t g = 0;
  for (; g + 32 <= k / 16; g += 32) {
    off0 = _mm512_fmadd_ps(_mm512_loadu_ps(b + g), _mm512_loadu_ps(sums + g), off0);
    off1 = _mm512_fmadd_ps(_mm512_loadu_ps(b + g + 16), _mm512_loadu_ps(sums + g + 16), off1);
  }
  for (; g < k / 16; ++g) tail += b[g] * sums[g];
  const __m512 all = _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(off0, off1));
  return _mm512_reduce_add_ps(all) + tail;
}

MCW_VNNI void rows_vnni(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  thread_local std::vector<uint8_t> u;
  thread_local std::vector<float> a, b;
  u.resize(size_t(r.k)), a.resize(size_t(r.k / 16)), b.resize(size_t(r.k / 16));
  for (int64_t row = r0; row < r1; ++row) {
    const uint8_t* w = r.w + row * r.row_bytes;
    if (!unpack_simd(r.type, w, r.k, u.data(), a.data(), b.data()))
      unpack_row(r.type, w, r.k, u.data(), a.data(), b.data());
    for (int64_t i = 0; i < r.m; ++i)
      y.store(i, row, dot_vnni(u.data(), a.data(), b.data(), r.x[i], r.k));
  }
}

}  // namespace

void rows_unpacked_vnni(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  rows_vnni(r, r0, r1, y);
}

}  // namespace mcw::block_detail

#else

namespace mcw::block_detail {
void rows_unpacked_vnni(const Rows& r, int64_t r0, int64_t r1, const Out& y) {
  rows_generic(r, r0, r1, y);
}
}  // namespace mcw::block_detail

#endif
