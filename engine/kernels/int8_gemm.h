// An affine-coded weight (2-, 3-, 4- or 8-bit codes, groups along a row) laid out for
// integer matrix products at large m: a convolution's tile of pixels, a sequence of tokens.
// There the small-m product of packed_weight.h, which walks every code once per 8 rows of X,
// falls behind the f32 GEMM on a weight that stays in cache (2–3× slower on PP-OCRv4's
// convolutions); this layout runs each code against 8 rows of X at once, 16 output rows
// per vector, in integer dot products.
//
// Layout: output rows in tiles of 16. Along a row, each group's columns (act-order g_idx
// folded in: a group's columns in increasing order) are cut into blocks of at most 256, each
// padded to a multiple of 8 slots. Per tile, a step of 8 slots is 64 bytes: byte 4r + j holds
// row r's codes of slots j (low nibble) and j + 4 (high nibble); 8-bit codes take two such
// 64-byte halves, bytes as they are. Per tile and group, the 16 rows' scales and offsets
// (−scale·zero), so that row·x = Σ_block scale·d_block·(q·x̂) + offset·Σx_block.
//
// X is rounded once per product to int8, one scale d = max|x|/127 per row and block (a
// group of 128: as fine as the small-m path's and ggml's Q8_K), and the offsets meet
// d·Σx̂, so the result is the exact product with x̂ up to f32 rounding: |Δy| ≤ Σ|w|·d/2.
// AVX-512 VNNI runs it (vpdpbusd: unsigned codes times signed x̂, 32-bit sums); elsewhere a
// plain loop computes the same sums (exact, slow: int8_gemm_fast() says which).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"

namespace mcw {

struct Int8GemmBlock {
  int32_t group = 0;
  int64_t slot0 = 0, length = 0;  // slots into a row of x̂; length a multiple of 16
  int64_t col0 = -1, cols = 0;    // its columns col0 .. col0 + cols − 1; col0 −1: scattered
};

class Int8GemmWeight {
 public:
  static constexpr int64_t kTileRows = 16, kXRows = 8;

  // None for a coding this layout does not hold: not Affine, or with a mask, outliers, an
  // input scale, or codes wider than 8 bits.
  static std::optional<Int8GemmWeight> from_compressed(const CompressedTensor& t);

  // Y[i·ldy + r] = (accumulate ? Y : 0) + row r · X row i (+ bias[r]), as PackedWeight.
  void matmul(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
              const float* bias = nullptr, bool accumulate = false) const;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  std::string describe() const;  // "affine int4 g128 (int8 GEMM tiles)"

  // For the kernels (int8_gemm_isa.h).
  int bits() const { return bits_; }
  int64_t row_slots() const { return slots_; }  // a padded row of x̂
  int64_t step_bytes() const { return bits_ == 8 ? 128 : 64; }
  int64_t tile_bytes() const { return slots_ / 8 * step_bytes(); }
  const std::vector<Int8GemmBlock>& blocks() const { return blocks_; }
  const uint8_t* tile_codes(int64_t tile) const { return codes_.data() + tile * tile_bytes(); }
  // [groups][16] of tile `tile`
  const float* tile_scales(int64_t tile) const { return scale_.data() + tile * groups_ * 16; }
  const float* tile_offsets(int64_t tile) const { return offset_.data() + tile * groups_ * 16; }

 private:
  // Rows of X (n of them) as x̂ [n][row_slots()], d and d·Σx̂ [n][blocks].
  void quantize_rows(const float* X, int64_t ldx, int64_t n, int8_t* xq, float* d, float* xs) const;

  std::string scheme_;  // the coding's description
  int64_t rows_ = 0, cols_ = 0, groups_ = 0, slots_ = 0;
  int bits_ = 0;
  std::vector<Int8GemmBlock> blocks_;
  std::vector<int32_t> slot_col_;  // [slots_]: column, −1 for padding
  std::vector<uint8_t> codes_;     // [tiles][slots_ / 8][step_bytes]
  std::vector<float> scale_, offset_;
};

// Whether products run on the integer kernel here (AVX-512 VNNI within the MCW_CPU cap):
// elsewhere the plain loop is exact but slower than the small-m path, which callers keep.
bool int8_gemm_fast();

}  // namespace mcw
