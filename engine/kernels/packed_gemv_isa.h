// Internal: the packed layouts as the small-m kernels see them, and what each SIMD path
// (packed_gemv_<isa>.cpp) provides to the driver in packed_weight.cpp. The driver owns
// validation, threading and the preparation of x; a path computes rows [r0, r1) of Y for
// up to 8 rows of x.
#pragma once
#include <cstdint>
#include <cstring>

#include "engine/kernels/block_gemv.h"
#include "engine/kernels/gemv_output.h"

namespace mcw::packed_detail {

// Codes come in units of 32; a unit of b-bit codes takes 4·b bytes:
//   8-bit: byte j = q[j]
//   4-bit: byte j (< 16) = q[j] | q[j + 16] << 4
//   2-bit: byte j (< 8)  = q[j] | q[j + 8] << 2 | q[j + 16] << 4 | q[j + 24] << 6
//   3-bit: the 2-bit unit of the low two bits, then a little-endian u32 whose bit j is
//          bit 2 of q[j].
// Each layout puts the codes a SIMD register needs next to each other: nibble and crumb
// planes are split with one shift and one mask.
constexpr int kUnit = 32;
constexpr int64_t unit_bytes(int bits) { return 4 * int64_t(bits); }

inline void encode_unit(int bits, const uint8_t* q, uint8_t* p) {
  switch (bits) {
    case 8:
      std::memcpy(p, q, 32);
      break;
    case 4:
      for (int j = 0; j < 16; ++j) p[j] = uint8_t((q[j] & 15) | (q[j + 16] & 15) << 4);
      break;
    default: {  // 2 or 3
      for (int j = 0; j < 8; ++j)
        p[j] =
            uint8_t((q[j] & 3) | (q[j + 8] & 3) << 2 | (q[j + 16] & 3) << 4 | (q[j + 24] & 3) << 6);
      if (bits == 3) {
        uint32_t h = 0;
        for (int j = 0; j < 32; ++j) h |= uint32_t((q[j] >> 2) & 1) << j;
        for (int k = 0; k < 4; ++k) p[8 + k] = uint8_t(h >> (8 * k));
      }
    }
  }
}

inline void decode_unit(int bits, const uint8_t* p, uint8_t* q) {
  switch (bits) {
    case 8:
      std::memcpy(q, p, 32);
      break;
    case 4:
      for (int j = 0; j < 16; ++j) q[j] = p[j] & 15, q[j + 16] = p[j] >> 4;
      break;
    default:
      for (int j = 0; j < 8; ++j)
        for (int s = 0; s < 4; ++s) q[j + 8 * s] = (p[j] >> (2 * s)) & 3;
      if (bits == 3)
        for (int j = 0; j < 32; ++j) q[j] = uint8_t(q[j] | ((p[8 + j / 8] >> (j % 8)) & 1) << 2);
  }
}

// Row r, group g: codes at codes + r·row_bytes + g·units_per_group·unit_bytes(bits);
// scale and offset (−scale·zero) at [r·groups + g]. x is in slot order.
struct AffineView {
  int bits;
  int64_t groups, units_per_group, row_bytes;
  const uint8_t* codes;
  const float* scale;
  const float* offset;
};

// Dense f16 rows of `ld` (a multiple of 32, zero padded) values.
struct F16View {
  const uint16_t* w;
  int64_t ld;
};

// Row r: `blocks` blocks of 32 columns; block b has 16 f16 values at
// values + (r·blocks + b)·16 and a u32 at positions[r·blocks + b] whose bits 2k..2k+1 give
// value k's column within its group of 4: column 32·b + 4·(k / 2) + position.
struct Sparse24View {
  const uint16_t* values;
  const uint32_t* positions;
  int64_t blocks;
};

// m <= 8 rows of x at stride ldx, in the layout's column order and zero padded to its
// width; for Affine, sum[i·ldsum + g] = Σ of row i over group g.
struct XRows {
  const float* x;
  int64_t ldx;
  const float* sum;
  int64_t ldsum;
  int64_t m;
};

// The same rows of x quantised to int8 (in slot order, blocks of `x[i].block` slots that
// never straddle a group) for the integer-dot Affine product; sum[i·ldsum + g] = Σ of the
// rounded values of row i over group g (so the offsets multiply the same x̂ as the codes).
struct XInt8 {
  const Int8Activations* x;  // [m]
  const float* sum;
  int64_t ldsum;
  int64_t m;
};

using YOut = GemvOutput;

// Row tiles of a small-m kernel: rows [r0, r1) go in tiles of `tile` rows r, r + q, ...,
// r + (tile − 1)·q with q = row_stride(r0, r1, tile) and r = r0 .. r0 + q − 1, then the
// rows from r0 + tile·q one at a time. Each row of a tile continues where the same row of
// the previous tile ended, so the tile reads `tile` sequential streams. Adjacent rows
// (r .. r + tile − 1) interleave their streams inside one 4 KiB page when rows are short,
// and the hardware prefetcher loses them: q4 at 14336×4096 took 1.5× as long as at
// 4096×14336, the same bytes (docs/PERFORMANCE.md).
inline int64_t row_stride(int64_t r0, int64_t r1, int tile) { return (r1 - r0) / tile; }

struct PackedGemvIsa {
  const char* name;
  void (*affine)(const AffineView& w, const XRows& x, int64_t r0, int64_t r1, const YOut& y);
  // Σ_g scale_g·Σ_b dx_b·(q·x̂q)_b + offset_g·Σx̂_g: the exact product of the codes with
  // the rounded activations (up to f32 rounding).
  void (*affine_i8)(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y);
  void (*f16)(const F16View& w, const XRows& x, int64_t r0, int64_t r1, const YOut& y);
  void (*sparse24)(const Sparse24View& w, const XRows& x, int64_t r0, int64_t r1, const YOut& y);
};

const PackedGemvIsa& packed_isa_generic();
const PackedGemvIsa& packed_isa_avx2();    // the generic path off x86
const PackedGemvIsa& packed_isa_avx512();  // the generic path off x86
// The AVX2 integer-dot Affine products (packed_gemv_i8_256.inc): on vpmaddubsw
// (packed_gemv_i8_avx2.cpp), and on the 256-bit vpdpbusd in its VEX (AVX-VNNI) and EVEX
// (AVX-512 VNNI + VL) forms (packed_gemv_i8_vnni256.cpp); the generic one off x86.
void affine_i8_avx2(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y);
void affine_i8_avxvnni(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1, const YOut& y);
void affine_i8_avx512vl_vnni(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1,
                             const YOut& y);
// The AVX-512 VNNI one (packed_gemv_i8_avx512.cpp); the generic one off x86.
void affine_i8_avx512_vnni(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1,
                           const YOut& y);
void affine_i8_generic(const AffineView& w, const XInt8& x, int64_t r0, int64_t r1,
                       const YOut& y);

}  // namespace mcw::packed_detail
