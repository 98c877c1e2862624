// One compressed linear weight [rows = out features, cols = in features], whatever did it:
// affine or codebook quantisation (packed codes), a sparsity mask, a sparse table of f16
// outliers, or low-rank factors; optionally an input scale (AWQ). dequantize() gives back
// the f32 matrix the model runs with, and storage_bits() counts every bit a deployment
// format would have to store.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/tensor.h"

namespace mcw {

enum class WeightCoding {
  Dense,     // `dense` holds the (possibly pruned) values, stored as f16
  Affine,    // w = scale[g] * (q - zero[g]), q in [0, 2^bits)
  Codebook,  // w = codebook[g][q], 2^bits f16 entries per group
  LowRank,   // w = A · B, A [rows, rank], B [rank, cols], both f16
};

struct CompressedTensor {
  std::string name;
  int64_t rows = 0, cols = 0;
  WeightCoding coding = WeightCoding::Dense;

  Tensor dense;  // F32 [rows, cols], for Dense

  // Affine / Codebook. Groups run along a row: group g of row r covers the columns with
  // group_of(c) == g. Without g_idx, columns [g*group_size, (g+1)*group_size).
  int bits = 0;
  int64_t group_size = 0;           // == cols for per-channel
  bool symmetric = false;           // zeros are then implied (2^(bits-1)) and not stored
  std::vector<uint8_t> codes;       // pack_codes() bitstream of rows*cols codes, row-major
  std::vector<float> scales, zeros; // [rows * groups] (Affine)
  std::vector<float> codebook;      // [rows * groups * 2^bits] (Codebook)
  std::vector<int32_t> g_idx;       // optional [cols]: group of each column (act-order)

  // Low rank
  int64_t rank = 0;
  Tensor lr_a, lr_b;  // F32 [rows, rank], [rank, cols]

  // Sparsity: bit per weight, 1 = kept (empty: dense). nm_n/nm_m > 0 marks an N:M pattern,
  // stored as kept values plus log2(M)-bit positions instead of a bitmask.
  std::vector<uint8_t> mask;
  int nm_n = 0, nm_m = 0;

  // Outliers kept exactly (f16) on top of the coding: flat index row*cols+col, value.
  std::vector<uint32_t> outlier_index;
  std::vector<uint16_t> outlier_value;  // f16 bits

  // Optional [cols]: the layer's input is divided by it (AWQ's s, when not folded into the
  // op before). Everything above then codes W·diag(s); dequantize() divides column c by
  // input_scale[c] last (after mask and outliers), and storage_bits() counts 16 bits per
  // entry (an f16, as AWQ rounds s to one when it can).
  std::vector<float> input_scale;

  int64_t groups() const;
  int64_t group_of(int64_t col) const;
  // Affine: the zero point of group g (row-major over rows · groups), 2^(bits−1) when
  // symmetric (implied, not stored).
  float zero_point(size_t g) const { return symmetric ? float(1 << (bits - 1)) : zeros[g]; }
  bool kept(int64_t i) const { return mask.empty() || (mask[size_t(i >> 3)] >> (i & 7)) & 1; }
  int64_t kept_count() const;

  Tensor dequantize() const;     // F32 [rows, cols], input scale applied
  // Rows [r0, r1) of dequantize() into dst [(r1 - r0), cols], the same values bit for bit
  // (low rank: up to the summation order of the A·B product), without the whole matrix:
  // for products that decode a weight tile by tile (matmul_wt_row_tiles).
  void dequantize_rows(int64_t r0, int64_t r1, float* dst) const;
  // codes, scales, zeros, codebooks, masks, outliers, factors, input scale
  uint64_t storage_bits() const;
  double bits_per_weight() const { return double(storage_bits()) / double(rows * cols); }
  // "int4 g128 asym", "f16, 2:4 sparse", "int4 g128 asym, input-scaled", ...
  std::string describe() const;
  // Frees codes, scales, masks, factors and the rest, keeping the name and the scheme's
  // fields (a streaming writer's copy has gone to disk).
  void drop_payload();
};

// `bits`-wide codes (1..8) packed little-endian into a bitstream, and back.
std::vector<uint8_t> pack_codes(const uint8_t* q, size_t n, int bits);
void unpack_codes(const uint8_t* packed, size_t n, int bits, uint8_t* q);
// Codes first .. first + n - 1 of such a bitstream.
void unpack_codes_from(const uint8_t* packed, size_t first, size_t n, int bits, uint8_t* q);

// Mask helpers: bit per weight, 1 = kept.
std::vector<uint8_t> mask_from_values(const float* w, size_t n);  // kept where w != 0

// A Dense CompressedTensor wrapping an f32 weight (a starting point for every method).
CompressedTensor dense_tensor(const Tensor& w, std::string name);

}  // namespace mcw
