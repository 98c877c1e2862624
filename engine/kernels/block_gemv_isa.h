// Internal: the paths of the block-weight small-m product (block_gemv_*.cpp) that the
// driver in block_gemv.cpp chooses from, and the portable pieces they share.
// The driver owns validation, the activations' quantisation and threading; a path computes
// outputs for rows [r0, r1) of W against all m (<= 8) rows of x.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"
#include "engine/kernels/block_gemv.h"
#include "engine/kernels/gemv_output.h"

namespace mcw::block_detail {

struct Rows {
  DType type;
  const uint8_t* w;  // row r at w + r·row_bytes
  int64_t row_bytes, k;
  const Int8Activations* x;  // [m]
  int64_t m;
};

using Out = GemvOutput;

// Rows [r0, r1) of W against the m rows of x, one function per path: the driver picks
// rows_kquant_avx512 for the K-quants on AVX-512, rows_legacy_vnni for the other types on
// AVX-512 VNNI, rows_avx2 for the rest on AVX2, rows_generic elsewhere.
using RowsFn = void (*)(const Rows& a, int64_t r0, int64_t r1, const Out& y);

void rows_generic(const Rows& a, int64_t r0, int64_t r1, const Out& y);
// The 32-value types and IQ4_XS fused, two blocks per vpdpbusd (block_gemv_legacy_avx512.cpp;
// AVX-512 VNNI); the generic path off x86.
void rows_legacy_vnni(const Rows& a, int64_t r0, int64_t r1, const Out& y);

// Every type fused, 32 codes per vpmaddubsw in their natural order (block_gemv_avx2.cpp;
// AVX2): the activations as quantised, no q_order; the generic path off x86.
void rows_avx2(const Rows& a, int64_t r0, int64_t r1, const Out& y);

// The K-quants fused, without unpacking (block_gemv_kquant_avx512.cpp; AVX-512 BW); needs
// the activations in block 256 with q_order and qsum16; the generic path off x86.
void rows_kquant_avx512(const Rows& a, int64_t r0, int64_t r1, const Out& y);

// Row `row` (k values of `type`) as unsigned codes u[k] with a[k/16], b[k/16]: value i is
// a[i/16]·u[i] + b[i/16]. Portable; the SIMD paths specialise the common types.
void unpack_row(DType type, const uint8_t* row, int64_t k, uint8_t* u, float* a, float* b);

// Σ_j b[j]·sum16[j] + Σ_j a[j]·d16[j]·Σ_{i in group j} u[i]·q[i], portable.
float unpacked_dot(const uint8_t* u, const float* a, const float* b, const Int8Activations& x,
                   int64_t k);

}  // namespace mcw::block_detail
