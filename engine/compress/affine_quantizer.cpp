#include "engine/compress/affine_quantizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/core/error.h"
#include "engine/core/half.h"

namespace mcw {

// Nearest f16 value, kept positive and finite so that w/scale is always defined.
static float f16_scale(float s) {
  constexpr float kMinSub = 5.9604645e-8f, kMax = 65504.0f;
  if (!(s > 0.0f)) return kMinSub;
  const float r = f16_to_f32(f32_to_f16(std::min(s, kMax)));
  return std::max(r, kMinSub);
}

AffineParams affine_params_range(float lo, float hi, int bits, bool symmetric, float shrink) {
  lo = std::min(lo, 0.0f) * shrink;
  hi = std::max(hi, 0.0f) * shrink;
  const float maxq = float(affine_levels(bits) - 1);
  AffineParams p;
  if (symmetric) {
    float amax = std::max(-lo, hi);
    if (amax == 0.0f) amax = 1.0f;
    p.scale = f16_scale(2.0f * amax / maxq);
    p.zero = float(affine_levels(bits) / 2);
  } else {
    if (lo == 0.0f && hi == 0.0f) lo = -1.0f, hi = 1.0f;
    p.scale = f16_scale((hi - lo) / maxq);
    p.zero = std::clamp(std::nearbyint(-lo / p.scale), 0.0f, maxq);
  }
  return p;
}

AffineParams affine_params(const float* w, int64_t n, int64_t stride, int bits, bool symmetric,
                           float shrink) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = w[i * stride];
    lo = std::min(lo, v), hi = std::max(hi, v);
  }
  return affine_params_range(lo, hi, bits, symmetric, shrink);
}

double affine_error(const float* w, int64_t n, int64_t stride, const double* weight,
                    const AffineParams& p, int bits) {
  double e = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = w[i * stride];
    const double d = double(v) - double(affine_round(v, p, bits));
    e += (weight ? weight[i] : 1.0) * d * d;
  }
  return e;
}

AffineParams affine_params_search(const float* w, int64_t n, int64_t stride, const double* weight,
                                  int bits, bool symmetric, const ClipSearch& clip) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = w[i * stride];
    lo = std::min(lo, v), hi = std::max(hi, v);
  }
  AffineParams best = affine_params_range(lo, hi, bits, symmetric);
  if (!clip.enabled) return best;
  double best_err = affine_error(w, n, stride, weight, best, bits);
  // Integer steps so that the grid of factors is exact and does not drift.
  const int steps = int(std::floor((1.0f - clip.min_shrink) / clip.step + 1e-4f));
  for (int k = 1; k <= steps; ++k) {
    const float shrink = 1.0f - float(k) * clip.step;
    const AffineParams p = affine_params_range(lo, hi, bits, symmetric, shrink);
    const double e = affine_error(w, n, stride, weight, p, bits);
    if (e < best_err) best_err = e, best = p;
  }
  return best;
}

void check_affine_bits(const std::string& name, const char* method, int bits) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    throw Error(name, "bits must be one of 2, 3, 4, 8 for " + std::string(method) + ", got " +
                          std::to_string(bits));
}

void check_group_size(const std::string& name, const char* method, int64_t group_size,
                      int64_t cols) {
  if (group_size <= 0 || cols % group_size != 0)
    throw Error(name, std::string(method) + " group size " + std::to_string(group_size) +
                          " must be positive and divide the " + std::to_string(cols) +
                          " input columns");
}

void check_clip_search(const std::string& name, const char* method, const ClipSearch& clip) {
  if (!clip.enabled) return;
  if (!(clip.min_shrink > 0.0f && clip.min_shrink <= 1.0f) || !(clip.step > 0.0f) ||
      (1.0f - clip.min_shrink) / clip.step > 10000.0f)
    throw Error(name, std::string(method) +
                          " clipping search needs 0 < min_shrink <= 1 and 0 < step, with at most "
                          "10000 steps");
}

int64_t fit_group_size(int64_t group_size, int64_t cols) {
  if (group_size <= 0 || cols % group_size == 0) return group_size;
  for (int64_t c : {128, 64, 32})
    if (c <= group_size && cols % c == 0) return c;
  return 0;
}

}  // namespace mcw
