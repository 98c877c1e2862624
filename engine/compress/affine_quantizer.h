// The affine grid every weight quantiser here shares: w ≈ scale·(q − zero), q in
// [0, 2^bits), as CompressedTensor's Affine coding stores it.
//
// Conventions (those of the GPTQ reference quantiser, which AutoGPTQ also uses):
// - the range always contains 0: lo = min(min w, 0), hi = max(max w, 0), so a zero weight
//   (a dead channel, a pruned weight) stays exactly zero;
// - asymmetric: scale = (hi − lo)/(2^b − 1), zero = round(−lo/scale), an integer code;
// - symmetric: scale = max|w| / (2^(b−1) − 0.5) (= 2·max|w|/(2^b − 1)), zero = 2^(b−1),
//   implied and not stored; the most negative code reaches −max|w|;
// - an all-zero group gets the range [−1, 1] so that its scale is never 0;
// - scales are rounded to f16, because that is what storage_bits() counts and what a
//   deployment format keeps; codes are computed with the rounded scale;
// - q = clamp(round_half_even(w/scale) + zero, 0, 2^b − 1).
// `shrink` in (0, 1] scales the range before the grid is made (clipping search).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace mcw {

struct AffineParams {
  float scale = 1.0f;
  float zero = 0.0f;
};

// Grid for the range [lo, hi] (0 is added to it), shrunk by `shrink`.
AffineParams affine_params_range(float lo, float hi, int bits, bool symmetric, float shrink = 1);
// Grid for n values w[0], w[stride], ...
AffineParams affine_params(const float* w, int64_t n, int64_t stride, int bits, bool symmetric,
                           float shrink = 1);

inline int affine_levels(int bits) { return 1 << bits; }
// Inline: GPTQ's column loop calls it once per weight.
inline uint8_t affine_code(float w, const AffineParams& p, int bits) {
  const float maxq = float(affine_levels(bits) - 1);
  const float q = std::nearbyint(w / p.scale) + p.zero;
  // NaN weights map to the zero code rather than to an undefined conversion.
  if (!(q == q)) return uint8_t(std::clamp(p.zero, 0.0f, maxq));
  return uint8_t(std::clamp(q, 0.0f, maxq));
}
inline float affine_value(uint8_t q, const AffineParams& p) {
  return p.scale * (float(q) - p.zero);
}
inline float affine_round(float w, const AffineParams& p, int bits) {
  return affine_value(affine_code(w, p, bits), p);
}

// Clipping search: shrink factors 1, 1 − step, ..., down to min_shrink; the one with the
// least Σ weight[i]·(w − ŵ)² wins (ties go to the larger factor, so no clipping when it
// does not help). weight may be null (all 1).
struct ClipSearch {
  bool enabled = false;
  float min_shrink = 0.5f;
  float step = 0.01f;
};
AffineParams affine_params_search(const float* w, int64_t n, int64_t stride, const double* weight,
                                  int bits, bool symmetric, const ClipSearch& clip);
// Σ weight[i]·(w[i·stride] − ŵ)² on the grid p.
double affine_error(const float* w, int64_t n, int64_t stride, const double* weight,
                    const AffineParams& p, int bits);

// Shared argument checks, each a one-line mcw::Error naming the layer and the method:
// bits in {2, 3, 4, 8}; group_size > 0 dividing cols; the clip search range sane.
void check_affine_bits(const std::string& name, const char* method, int bits);
void check_group_size(const std::string& name, const char* method, int64_t group_size,
                      int64_t cols);
// The group size a layer with `cols` inputs takes for a requested one: itself when it
// divides cols (or is 0, per channel, or negative, per tensor), else the largest of
// 128/64/32 not above it that does, else 0 (one grid per output channel).
int64_t fit_group_size(int64_t group_size, int64_t cols);
void check_clip_search(const std::string& name, const char* method, const ClipSearch& clip);

}  // namespace mcw
