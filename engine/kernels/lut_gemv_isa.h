// Internal: the lookup-table layout (lut_gemv.h) as its kernels see it, and what each path
// (lut_gemv_<isa>.cpp) provides to the driver in lut_gemv.cpp.
//
// Bit planes: a b-bit code q = Σ_p 2^p·q_p. For one plane p, the bits of 4 consecutive inputs
// 4c .. 4c+3 form a 4-bit index i = Σ_k q_p[4c+k]·2^k, and
//   Σ_k q[4c+k]·x̂[4c+k] = Σ_p 2^p·T_c[i_p],   T_c[i] = Σ_k bit_k(i)·x̂[4c+k]
// where T_c is a 16-entry table built once per product from 4 activations.
//
// Codes: rows in blocks of 16 (the last block zero padded), each block one run of bytes, so
// that a block streams from memory as one sequence. Within a block, groups: a group's
// superchunks of 32 inputs (8 tables, c = 0..7), then the 16 rows' f32 scales and f32
// offsets (−scale·zero). Within a superchunk, 64-byte records in the order: pair(0,1) h=0,
// pair(0,1) h=1, then for 4 bits pair(2,3) h=0, h=1, for 3 bits single(2), for 1 bit only
// single(0). So a block takes 64·bits bytes per superchunk (`bits` bits per weight) and 128
// bytes per group; everything is 64-byte aligned. Byte 4·r + j of a record (r: row in the
// block, j = 0..3) holds two indices (a dword per row: vpdpbusd adds its 4 bytes):
//   pair(p, p+1), half h: low nibble  = index of plane p + (j & 1), table 4h + (j >> 1)
//                         high nibble = index of plane p + (j & 1), table 4h + 2 + (j >> 1)
//   single(p):            low nibble  = index of plane p, table j
//                         high nibble = index of plane p, table 4 + j
// Tables: per row of x and superchunk, a set of 128 bytes: tables 0..3 then 4..7, 16 int8 entries
// each, so that one 64-byte register holds the 4 tables a record's nibbles address and a
// nibble plus 16·(table mod 4) is its vpermb index.
//
// Table precision (LutActivations, lut_gemv.h):
//   Int6: |x̂| <= 31, so T (a sum of at most 4 x̂, |T| <= 124) fits int8: one table per
//         index.
//   Int8: |x̂| <= 127 (the int8 path's precision); T does not fit int8 (|T| <= 508), so each
//         x̂ is split as 16·h + l (l = x̂ & 15 in 0..15, h = x̂ >> 4 in −8..7) and there are
//         two tables per index, TL over the l (0..60) and TH over the h (−32..28), with
//         T = TL + 16·TH: two lookups per index, TH weighed by 16·2^p (<= 128, a u8).
//         Per superchunk 256 bytes: the 128 of TL, then the 128 of TH.
#pragma once
#include <cstdint>

#include "engine/kernels/gemv_output.h"

namespace mcw::lut_detail {

constexpr int kBlockRows = 16;
constexpr int kSuperchunk = 32;   // inputs per superchunk
constexpr int kRecordBytes = 64;  // one record: 16 rows × 4 bytes
constexpr int kTableBytes = 128;  // one set of tables per superchunk per row of x
constexpr int activation_max(bool split) { return split ? 127 : 31; }
constexpr int table_bytes(bool split) { return split ? 2 * kTableBytes : kTableBytes; }

// Records per superchunk, and which kind each is.
constexpr int records(int bits) { return bits; }
// Record k of a superchunk: is it a pair (else a single plane), its first plane, its half.
struct RecordKind {
  bool pair;
  int plane, half;
};
constexpr RecordKind record_kind(int bits, int k) {
  if (k < 2 * (bits / 2)) return {true, 2 * (k / 2), k % 2};
  return {false, bits - 1, 0};
}

// The table (0..7) and plane of nibble `hi` of byte j (0..3) of record kind rk.
constexpr int nibble_table(const RecordKind& rk, int j, int hi) {
  return rk.pair ? 4 * rk.half + 2 * hi + (j >> 1) : 4 * hi + j;
}
constexpr int nibble_plane(const RecordKind& rk, int j) {
  return rk.pair ? rk.plane + (j & 1) : rk.plane;
}

// Bytes of one group of one block: its records, then 16 scales and 16 offsets.
constexpr int64_t group_bytes(int bits, int64_t supers_per_group) {
  return supers_per_group * records(bits) * kRecordBytes + 2 * kBlockRows * int64_t(sizeof(float));
}

struct LutView {
  int bits;
  int64_t rows, blocks, groups, supers_per_group;
  int64_t group_bytes, block_bytes;  // block_bytes = groups · group_bytes
  const uint8_t* codes;              // 64-byte aligned
};

// m <= 8 rows of x, each as tables (table_bytes(split) per superchunk), the activation scale
// dx per group and dx·Σx̂ per group.
struct LutX {
  bool split;  // Int8: TL and TH per superchunk
  const int8_t* tables;
  int64_t ld_tables;
  const float* dx;
  const float* sx;
  int64_t ld_groups;
  int64_t m;
};

// One row of x, zero padded to the layout's width (whole groups): its tables
// [width / 32 × table_bytes(split)], dx and dx·Σx̂ per group, rounded as
// lut_quantize_activations rounds (lut_gemv.h). Every path writes the same bytes and floats.
using LutPrepare = void (*)(const float* x, int64_t width, int64_t group, bool split,
                            int8_t* tables, float* dx, float* sx);

// Rows of blocks [b0, b1) (rows past view.rows are not stored). Every path computes, per
// (row, group), the integer S = Σ q·x̂ exactly, then per row in group order
// acc = fma(float(S), scale·dx, acc), acc = fma(offset, sx, acc): the results agree bit for
// bit between paths.
using LutRows = void (*)(const LutView& w, const LutX& x, int64_t b0, int64_t b1,
                         const GemvOutput& y);

struct LutIsa {
  const char* name;
  LutPrepare prepare;
  LutRows rows;
};
const LutIsa& lut_isa_generic();
// AVX-512 with VBMI (vpermb) and VNNI (vpdpbusd); the generic path off x86. Only to be used
// where the CPU has them (lut_gemv.cpp checks).
const LutIsa& lut_isa_avx512();
// AVX2 with FMA (vpshufb, vpmaddubsw); the generic path off x86.
const LutIsa& lut_isa_avx2();

}  // namespace mcw::lut_detail
