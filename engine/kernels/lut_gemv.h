// A lookup-table (T-MAC-style) layout for 1–4-bit group-wise affine weights, and the product
// with it: Y[m, rows] (+)= X[m, cols] · Wᵀ (+ bias).
//
// Built from the same CompressedTensor as PackedWeight's Affine layout (codes, per (row,
// group) scale and zero), it stores the codes as bit planes: for each plane, the bits of 4
// consecutive inputs form a 4-bit index into a 16-entry table of the sums of those inputs'
// activations (lut_gemv_isa.h has the byte layout). A product quantises x once per group
// (dx = max|x_g| / A, x̂ = round-to-nearest-even(x / dx), |x̂| <= A), builds the tables, and
// for every (row, group) adds up S = Σ_p 2^p·Σ_c T_c[i_p,c] = Σ q·x̂ exactly in int32; the
// row is then Σ_g scale_g·dx_g·S_g + offset_g·dx_g·Σx̂_g. The result is the exact product
// with x̂ up to f32 rounding: |Δy| <= Σ_g Σ_{c∈g} |w_c|·dx_g/2 against the f32 product.
// Two precisions (LutActivations):
//   Int8: A = 127, the int8 path's bound (affine_activation_block's for groups up to 256
//         slots; larger groups, one dx here, get finer blocks there). A table entry (up to 4·127)
//         does not fit int8: each index is looked up twice, in tables of x̂'s low nibbles and of its
//         high parts.
//   Int6: A = 31, four times the bound; every table entry fits int8 (|T| <= 124): one lookup
//         per index, about two thirds of Int8's instructions.
//
// On AVX-512 with VBMI and VNNI one vpermb looks up 64 indices (16 rows × 4 tables) and one
// vpdpbusd weighs them by 2^p and adds them into per-row int32 sums; on AVX2, vpshufb per
// table with byte blends, and vpmaddubsw / vpmaddwd; elsewhere a portable path. All three
// compute the same integers and the same f32 epilogue, so they agree bit for bit. Work is
// split over blocks of 16 rows with oneTBB.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"

namespace mcw {

enum class LutActivations { Int8, Int6 };

class LutWeight {
 public:
  LutWeight() = default;

  // Empty when t can take this layout, else the reason it cannot (not affine, bits outside
  // 1..4, a group size that is not a multiple of 32, act-order, mask, outliers, input
  // scale). Does not check the payload's sizes; from_compressed does.
  static std::string unsupported(const CompressedTensor& t);
  // Throws mcw::Error naming the tensor when unsupported() says so or the counts of codes,
  // scales or zeros do not match. `activations`: the precision every product rounds x to.
  static LutWeight from_compressed(const CompressedTensor& t,
                                   LutActivations activations = LutActivations::Int8);

  // Y[i·ldy + r] = (accumulate ? Y : 0) + row r · X row i (+ bias[r]), i < m. Any m (more
  // than 8 rows of x in passes of 8). std::invalid_argument for negative m or short leading
  // dimensions, mcw::Error on an empty LutWeight.
  void matmul(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
              const float* bias = nullptr, bool accumulate = false) const;
  void matmul(const float* X, float* Y, int64_t m, const float* bias = nullptr,
              bool accumulate = false) const {
    matmul(X, cols_, Y, rows_, m, bias, accumulate);
  }

  // Rows [r0, r1) as f32 into dst [(r1 − r0), cols()]: scale·q + offset, the same f32
  // operations as PackedWeight's Affine layout (its exact path and large-m tiles).
  void dequantize_rows(int64_t r0, int64_t r1, float* dst) const;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int bits() const { return bits_; }
  int64_t group_size() const { return group_size_; }
  LutActivations activations() const { return activations_; }
  // "lut int2 g128, x int8", as PackedWeight::describe() names its layouts.
  std::string describe() const;
  // Bytes one product streams: codes, scales and offsets.
  uint64_t weight_bytes() const;

 private:
  std::string name_;
  int64_t rows_ = 0, cols_ = 0, group_size_ = 0, groups_ = 0;
  int bits_ = 0;
  LutActivations activations_ = LutActivations::Int8;
  // Blocks of 16 rows, each its groups' records, scales and offsets (lut_gemv_isa.h), in
  // cache lines so that no 64-byte load straddles two.
  struct alignas(64) Line {
    uint8_t bytes[64];
  };
  std::vector<Line> lines_;

  void matmul_upto8(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
                    const float* bias, bool accumulate) const;
};

// The path the product takes now: "avx512" (VBMI + VNNI), "avx2" or "generic".
const char* lut_gemv_path();

// Whether PackedWeight packs 1–3-bit affine codes in this layout (process-wide, default on;
// it does only where lut_gemv_path() is "avx512", the path measured to beat the Affine int8
// product: docs/PERFORMANCE.md). Off: the Affine layout, as before the LUT kernel; the
// environment variable MCW_LUT=0 starts with it off.
void set_lut_kernels(bool on);
bool lut_kernels();

// x [k] rounded for the tables, group by group (k a whole number of groups): A = 127 (Int8)
// or 31 (Int6), dx[g] = max |x| / A over the group, q = round-to-nearest-even(x / dx)
// clamped to ±A, sx[g] = dx[g]·Σq. Exposed for the tests' reference.
void lut_quantize_activations(const float* x, int64_t k, int64_t group, LutActivations a, int8_t* q,
                              float* dx, float* sx);

}  // namespace mcw
