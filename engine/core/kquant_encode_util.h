// Internal to the ggml-exact encoders (kquant_encode.cpp, kquant_encode_weighted.cpp): the
// rounding primitives and block fits both the plain and the importance-weighted encoders
// use. Not part of the engine's API. Every .cpp including this must switch fp-contraction
// off before the include (see kquant_encode.cpp): the inline helpers are compiled there.
#pragma once
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"

namespace mcw::kquant {

// Adding 1.5·2^23 leaves round-to-nearest-even(v) in the low mantissa bits (|v| < 2^22).
// Outside that range the result is meaningless but deterministic, as in the reference,
// and every caller clamps it.
inline int round_nearest(float v) {
  const float shifted = v + 12582912.0f;
  return int(std::bit_cast<uint32_t>(shifted) & 0x7fffffu) - 0x400000;
}

// float -> int as x86's cvttss2si: truncation toward zero, and INT32_MIN for NaN or values
// outside int32. C++ leaves those cases undefined, yet the reference reaches them for blocks
// so tiny that 1/d overflows to infinity, and its bytes there are the x86 ones. Spelling the
// rule out keeps those bytes on every target and keeps UBSan (float-cast-overflow) quiet.
inline int truncate_x86(float v) {
  return v >= -2147483648.0f && v < 2147483648.0f ? int(v) : std::numeric_limits<int>::min();
}

// f32 -> f16 as ggml rounds it; MCW's converter agrees on every non-NaN input, but keeps
// NaN payloads where ggml writes the canonical quiet NaN 0x7e00 (with the sign).
inline uint16_t to_half(float v) {
  if (std::isnan(v)) return uint16_t(((std::bit_cast<uint32_t>(v) >> 16) & 0x8000u) | 0x7e00u);
  return f32_to_f16(v);
}

// ggml's "this group is all zeros" threshold for the max-abs searches.
constexpr float kAllZero = 1e-15f;

// ---- Affine codes: x ≈ scale·l − lift, l in [0, top], groups of kSub values ----------------

constexpr int kSub = 32;  // values per Q4_K / Q5_K sub-block, and per Q4_1 / Q5_1 block

struct AffineSearch {
  int top;      // largest code: 15 or 31
  float first;  // the trial grid spans top + first .. top + first + step·trials
  float step;
  int trials;
};

// Weighted least-squares fit of kSub values over a grid of candidate scales (w: one
// non-negative weight per value). Returns the scale, sets lift (the negated offset) and
// the codes.
float fit_affine(const float* x, const float* w, const AffineSearch& s, uint8_t* codes,
                 float& lift);

// Q4_K / Q5_K: the 6-bit scale and min codes of the 8 sub-blocks into the 12 packed bytes
// (kquant_scale_min reads them back).
void pack_scale_min(const uint8_t* ls, const uint8_t* lm, uint8_t* packed);

// Q4_K / Q5_K, once d, dmin and scales are stored: recomputes the codes of each sub-block
// whose stored step is non-zero against the stored (rounded) parameters, keeps `codes`
// elsewhere, and packs them into qs (and qh).
void finish_q4_k(const float* x, BlockQ4_K& y, uint8_t* codes);
void finish_q5_k(const float* x, BlockQ5_K& y, uint8_t* codes);

// ---- Symmetric codes: x ≈ scale·(l − half), l in [0, 2·half − 1] ----------------------------

// Fits kN values: the value of largest magnitude anchors the grid at −half, 18 nudged grids
// are tried, and the scale that explains most of Σw·x² is kept. w null: w = x² (ggml's
// rmse_type 1). Instantiated for <16, 32> (Q6_K), <32, 8> (Q4_0) and <32, 16> (Q5_0).
template <int kN, int kHalf>
float fit_symmetric(const float* x, const float* w, int8_t* codes);

// Q6_K over n values; importance null gives the reference encoder (weights x²), otherwise
// importance[i] weighs value i directly (ggml's quantize_row_q6_K_impl).
void encode_q6_k(const float* x, BlockQ6_K* out, size_t n, const float* importance);

}  // namespace mcw::kquant
