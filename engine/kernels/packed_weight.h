// A linear weight in the layout its deployment kernel reads, built once from a
// CompressedTensor, and the product with it: Y[m, rows] (+)= X[m, cols] · Wᵀ (+ bias).
//
// Layouts (describe() says which one a weight took and why):
//   Affine   2/3/4/8-bit codes, groups along a row. Every group is padded to `group_slots`
//            (a multiple of 32) code slots so that a row is a run of whole 32-code units;
//            an act-order g_idx is folded in by permuting the columns once at pack time
//            (slot -> column table) and gathering x through it at run time. Per (row,
//            group) an f32 scale and the f32 offset -scale·zero, so that
//            row·x = Σ_g scale_g·(q_g·x_g) + offset_g·Σx_g: x's group sums are computed
//            once per product and the codes are only ever converted, never dequantised.
//            Outliers are kept as a per-row list of (column, value − decoded value).
//   Sparse24 2:4 pruning: per 4 columns 2 kept f16 values and their 2-bit positions.
//   F16      dense f16 rows (Dense coding; and the fallback for codings without a kernel
//            of their own: codebooks, unstructured masks, affine codes with a mask).
//   LowRank  two f32 products, x·Bᵀ then ·Aᵀ.
//   F32      dense f32 rows through the f32 GEMM (from_f32, or from_f32 of a model weight).
//   Stored   an uncompressed weight as its file stores it (bf16, f16, GGUF blocks), shared
//            with the mapped file, through matmul_wt_stored (from_stored).
//   Lut      1–3-bit affine codes as bit planes for the lookup-table product (lut_gemv.h),
//            where the CPU runs it fastest (lut_kernels()); int8 activations at every m,
//            dequantised tiles and the f32 GEMM when int8_activations() is off (exact).
// Input scale (AWQ, CompressedTensor::input_scale = s): the layout holds the codes of
// W·diag(s) and every product first divides X's columns by s into a scratch copy
// (m × cols divisions: what a deployment that cannot fold s into the op before pays).
// Small m (decode, short prefill: m <= 8) streams the packed rows once with the SIMD path
// of cpu_features().level (Affine: on int8 activations by default, see
// affine_activation_block). Larger m dequantises a tile of rows into a per-task scratch
// buffer and runs the f32 GEMM on it; the whole matrix is never materialised.
// Work is split over output rows with oneTBB.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/aligned_vector.h"

namespace mcw {

class LutWeight;

enum class PackedKind { F32, F16, Affine, Sparse24, LowRank, Stored, Lut };

class PackedWeight {
 public:
  PackedWeight() = default;

  // Throws mcw::Error naming the tensor when its fields are inconsistent (code, scale or
  // mask counts that do not match rows × cols, a g_idx entry out of range, ...).
  static PackedWeight from_compressed(const CompressedTensor& t);
  // A plain weight [rows, cols]: kept as f32, or rounded to f16.
  static PackedWeight from_f32(const float* w, int64_t rows, int64_t cols, bool as_f16,
                               std::string name = {});
  // A 2-D weight of any dtype matmul_wt_stored reads, kept as it is (a view stays a view).
  static PackedWeight from_stored(const Tensor& w);

  // Y[i·ldy + r] = (accumulate ? Y : 0) + row r · X row i (+ bias[r]), i < m, r < rows().
  // X rows are cols() long at stride ldx. Throws std::invalid_argument for negative m or
  // short leading dimensions (programming errors), mcw::Error on an empty PackedWeight.
  void matmul(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
              const float* bias = nullptr, bool accumulate = false) const;
  void matmul(const float* X, float* Y, int64_t m, const float* bias = nullptr,
              bool accumulate = false) const {
    matmul(X, cols_, Y, rows_, m, bias, accumulate);
  }

  // Rows [r0, r1) as f32 into dst [(r1 − r0), cols()] (columns in the original order),
  // divided by the input scale when there is one: the CompressedTensor's dequantize().
  void dequantize_rows(int64_t r0, int64_t r1, float* dst) const;

  const std::string& name() const { return name_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  PackedKind kind() const { return kind_; }
  int bits() const { return bits_; }
  const std::vector<float>& input_scale() const { return input_scale_; }  // empty: none
  // "affine int4 g128 (packed)", "f16 dense (fallback: codebook)", ...
  std::string describe() const;
  // Bytes one product streams: codes, scales, values, positions, factors, input scale.
  uint64_t weight_bytes() const;

 private:
  std::string name_, why_;  // why_: the reason for a fallback layout, empty otherwise
  int64_t rows_ = 0, cols_ = 0;
  PackedKind kind_ = PackedKind::F32;
  std::vector<float> input_scale_;  // [cols] or empty; the layout below codes W·diag(s)

  // Affine
  int bits_ = 0;
  int64_t groups_ = 0, group_slots_ = 0, group_size_ = 0;
  bool symmetric_ = false, act_order_ = false, permuted_ = false;  // permuted_: slot_col_ used
  AlignedVector<uint8_t> codes_;         // rows × groups × (group_slots / 32) units
  AlignedVector<float> scale_, offset_;  // [rows × groups]
  std::vector<int32_t> slot_col_;       // [groups × group_slots]: column, −1 for padding
  std::vector<int64_t> outlier_start_;  // [rows + 1] into outlier_col_/outlier_delta_
  std::vector<int32_t> outlier_col_;
  std::vector<float> outlier_delta_;

  // F16 [rows, cols]; Sparse24: values [rows, padded/2] f16, positions [rows, padded/32]
  AlignedVector<uint16_t> half_;
  std::vector<uint32_t> positions_;
  int64_t padded_cols_ = 0;

  // F32 [rows, cols]; LowRank: a_ [rows, rank], b_ [rank, cols]
  AlignedVector<float> f32_, a_, b_;
  int64_t rank_ = 0;

  Tensor stored_;  // Stored
  std::shared_ptr<const LutWeight> lut_;  // Lut

  static PackedWeight pack_affine(const CompressedTensor& t);
  static PackedWeight pack_sparse24(const CompressedTensor& t, const Tensor& w);
  static PackedWeight fallback_f16(const CompressedTensor& t, std::string why);
  static PackedWeight pack_unscaled(const CompressedTensor& t);
  void dequantize_unscaled(int64_t r0, int64_t r1, float* dst) const;
  void matmul_unscaled(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m,
                       const float* bias, bool accumulate) const;
  void small_m(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m, const float* bias,
               bool accumulate) const;
  void large_m(const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t m, const float* bias,
               bool accumulate) const;
};

// The SIMD path the small-m kernels take now ("avx512", "avx2", "avx2+avx-vnni",
// "avx2+avx512vl-vnni", "generic").
const char* packed_gemv_path();

// Affine products run on int8 activations when int8_activations() is on (the default;
// stored_matmul.h; at m > 8 in chunks of 8 rows), as llama.cpp runs its quantised types:
// x (in slot order) is
// quantised once per product, one scale max|x̂|/127 per block of this many slots — a
// whole group when it has at most 256 slots (a group of 128: one scale per 128 values, as
// fine as ggml's Q8_K's 256), else the largest whole number of 32-slot units up to 8 that
// divides it — and the codes meet x̂ in integer dot products. The result is the exact
// product with x̂ up to f32 rounding: |Δy| <= Σ|w|·dx/2 against the f32 path, which stays
// the exact one (int8_activations off). Outliers are added on the f32 x.
int64_t affine_activation_block(int64_t group_slots);

}  // namespace mcw
