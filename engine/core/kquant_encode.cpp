// Encoders for Q5_0, Q5_1, Q4_K, Q5_K and Q6_K that write, for any finite f32 input, the very
// bytes llama-quantize writes when it has no importance matrix (ggml's quantize_row_*_ref).
// (NaN inputs match too when built like ggml-base, but the NaN payload that wins an
// operation, and so the garbage codes it rounds to, may vary with compiler and flags.)
// Being byte-identical is the point: a file MCW quantises can then be compared with, or
// substituted for, one made by llama.cpp, and a tensor hash means the same thing in both.
//
// That only holds if every float operation happens in the reference's order and precision,
// so the code below keeps three habits the reader might otherwise "tidy up":
//  * sums are accumulated left to right in float, products are written in the order
//    (w·l)·x etc. that the reference evaluates them, and int codes are widened to float
//    exactly where the reference widens them;
//  * rounding is round_nearest() (the 1.5·2^23 trick, ties to even), never std::lround;
//  * float -> int8 conversions go through truncate_x86(), the reference's casts as x86 runs
//    them, including the out-of-range cases C++ leaves undefined.
// The build has no -ffast-math. Fused multiply-add is the remaining hazard: fusing a·b + c
// rounds once instead of twice, and GCC fuses by default (-ffp-contract=fast, even with
// -std=c++20) whenever the target has FMA: -march=native on any recent x86, all of aarch64.
// Clang fuses within an expression. The reference bytes are those of ggml-base as llama.cpp
// builds it for x86-64, without FMA (ggml-base gets no -march flags), so contraction is
// switched off for this file; built with -march=native, 4-16% of K-quant blocks would
// otherwise differ. (ggml itself built with FMA differs from ggml without it just as much.)
// Verified against ggml d99724f (gcc 12, -O3) in tests/engine/test_kquant_encode.cpp.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"
#include "engine/core/kquant_encode_util.h"

namespace mcw {
namespace kquant {

// ---- Affine codes (Q4_K, Q5_K, and the weighted Q4_1 / Q5_1) ----------------------------

// Weighted least squares over a small grid of candidate scales: each candidate fixes the
// codes by rounding, then scale and offset are solved in closed form for those codes, and
// the candidate with the lowest weighted squared error wins. Returns the scale and sets
// lift (>= 0, the negated offset); codes receive the winner.
// Note that each candidate grid is anchored at the best offset found so far, not at the
// data minimum: once a fit is accepted, later grids shift with it. The reference does this
// and the bytes depend on it, so it stays. (ggml: make_qkx2_quants for the reference
// encoders, make_qkx3_quants for the imatrix ones; for kSub values they agree.)
float fit_affine(const float* x, const float* w, const AffineSearch& s, uint8_t* codes,
                 float& lift) {
  constexpr int n = kSub;
  float lo = x[0], hi = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;  // the offset only ever lowers values: zero must stay representable
  if (hi == lo) {
    std::memset(codes, 0, n);
    lift = -lo;
    return 0.0f;
  }
  // Starting point: the plain min/max grid.
  float offset = lo;
  float inv = float(s.top) / (hi - offset);
  float scale = 1 / inv, best_err = 0;
  for (int i = 0; i < n; ++i) {
    codes[i] = uint8_t(std::clamp(round_nearest(inv * (x[i] - offset)), 0, s.top));
    const float e = scale * float(codes[i]) + offset - x[i];
    best_err += w[i] * (e * e);
  }
  uint8_t trial[kSub];
  for (int t = 0; t <= s.trials; ++t) {
    inv = (s.first + s.step * float(t) + float(s.top)) / (hi - offset);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_nearest(inv * (x[i] - offset)), 0, s.top);
      trial[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;  // all codes equal: the 2x2 system is singular
    float t_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float t_offset = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (t_offset > 0) t_offset = 0, t_scale = sum_xl / sum_l2;  // refit through the origin
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float e = t_scale * float(trial[i]) + t_offset - x[i];
      err += w[i] * (e * e);
    }
    if (err < best_err) {
      std::memcpy(codes, trial, n);
      best_err = err, scale = t_scale, offset = t_offset;
    }
  }
  lift = -offset;
  return scale;
}

// 12 bytes: sub-blocks 0-3 keep 6-bit scale (bytes 0-3) and min (4-7) whole; 4-7 put their
// low nibbles in bytes 8-11 and their top two bits in the spare bits 6-7 of 0-7.
void pack_scale_min(const uint8_t* ls, const uint8_t* lm, uint8_t* packed) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      packed[j] = ls[j], packed[j + 4] = lm[j];
    } else {
      packed[j + 4] = uint8_t((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
      packed[j - 4] |= uint8_t((ls[j] >> 4) << 6);
      packed[j] |= uint8_t((lm[j] >> 4) << 6);
    }
  }
}

namespace {

template <class Block, int kBits>
void finish_k_affine(const float* x, Block& y, uint8_t* codes) {
  constexpr int kTop = (1 << kBits) - 1;
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, mn;
    kquant_scale_min(j, y.scales, sc, mn);
    const float d = f16_to_f32(y.d) * float(sc);
    if (d == 0) continue;  // keep the fitted codes: they decode to the lift either way
    const float dm = f16_to_f32(y.dmin) * float(mn);
    for (int l = 0; l < 32; ++l)
      codes[32 * j + l] = uint8_t(std::clamp(round_nearest((x[32 * j + l] + dm) / d), 0, kTop));
  }
  // Each 64 values share 32 bytes: value c in the low nibble, c + 32 in the high one; for
  // Q5_K the fifth bits go to qh[c], bit 2k for chunk k's first half, 2k + 1 its second.
  if constexpr (kBits == 5) std::memset(y.qh, 0, sizeof y.qh);
  for (int chunk = 0; chunk < 4; ++chunk) {
    const uint8_t* c = codes + 64 * chunk;
    for (int l = 0; l < 32; ++l) {
      y.qs[32 * chunk + l] = uint8_t((c[l] & 0xf) | ((c[l + 32] & 0xf) << 4));
      if constexpr (kBits == 5)
        y.qh[l] |= uint8_t(((c[l] >> 4) << (2 * chunk)) | ((c[l + 32] >> 4) << (2 * chunk + 1)));
    }
  }
}

// Q4_K and Q5_K reference: eight sub-blocks of 32, each fitted on its own, then all scales
// and lifts expressed as 6-bit multiples of two f16 super-block steps (the largest of each
// maps to 63), and the codes recomputed against the scales as stored (so rounding of the
// steps is absorbed).
template <class Block, int kBits>
void quantize_k_affine(const float* x, Block* out, size_t n, const AffineSearch& search) {
  for (size_t b = 0; b < n / kSuperBlock; ++b, x += kSuperBlock) {
    Block& y = out[b];
    uint8_t codes[kSuperBlock];
    float scale[8], lift[8], weight[32];
    float max_scale = 0, max_lift = 0;
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + 32 * j;
      // Weight values by magnitude, floored by the sub-block's RMS so small ones still count.
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
      const float rms = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weight[l] = rms + std::fabs(xs[l]);
      scale[j] = fit_affine(xs, weight, search, codes + 32 * j, lift[j]);
      if (scale[j] > max_scale) max_scale = scale[j];
      if (lift[j] > max_lift) max_lift = lift[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_lift = max_lift > 0 ? 63.f / max_lift : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
      // The reference narrows to uint8_t before clamping; the same here, wrap and all.
      ls[j] = std::min<uint8_t>(63, uint8_t(round_nearest(inv_scale * scale[j])));
      lm[j] = std::min<uint8_t>(63, uint8_t(round_nearest(inv_lift * lift[j])));
    }
    pack_scale_min(ls, lm, y.scales);
    y.d = to_half(max_scale / 63.f);
    y.dmin = to_half(max_lift / 63.f);
    finish_k_affine<Block, kBits>(x, y, codes);
  }
}

}  // namespace

void finish_q4_k(const float* x, BlockQ4_K& y, uint8_t* codes) {
  finish_k_affine<BlockQ4_K, 4>(x, y, codes);
}
void finish_q5_k(const float* x, BlockQ5_K& y, uint8_t* codes) {
  finish_k_affine<BlockQ5_K, 5>(x, y, codes);
}

// ---- Symmetric codes (Q6_K, and the weighted Q4_0 / Q5_0) -------------------------------

// Codes for scales near half/max, weighting each value by w (by default x²: large values
// matter most): the start plus 18 nudged grids; for each, the weighted least-squares scale
// for its codes, keeping the grid that explains most of Σw·x² (the largest (Σwxl)²/Σwl²).
// (ggml's make_qx_quants with rmse_type 1.)
template <int kN, int kHalf>
float fit_symmetric(const float* x, const float* w, int8_t* codes) {
  float amax = 0, peak = 0;  // peak: the signed value of largest magnitude (first if tied)
  for (int i = 0; i < kN; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), peak = x[i];
  if (amax < kAllZero) {
    std::memset(codes, 0, kN);
    return 0.f;
  }
  float wt[kN];
  for (int i = 0; i < kN; ++i) wt[i] = w ? w[i] : x[i] * x[i];
  // The peak lands on −half, the one end the signed range has room for. (Sums in locals:
  // l_out, a char type, may alias the reference parameters; weights in wt, not w ? : per
  // value. Scoring without storing codes is 1.4x faster again, but gcc then vectorises the
  // products and NaN inputs stop matching the reference's garbage bytes.)
  auto grid = [&](float inv, int8_t* l_out, float& sum_xl, float& sum_l2) {
    float sxl = 0, sl2 = 0;
    for (int i = 0; i < kN; ++i) {
      const int l = std::clamp(round_nearest(inv * x[i]), -kHalf, kHalf - 1);
      l_out[i] = int8_t(l + kHalf);
      sxl += wt[i] * x[i] * float(l);
      sl2 += wt[i] * float(l) * float(l);
    }
    sum_xl = sxl, sum_l2 = sl2;
  };
  float sum_xl, sum_l2;
  grid(float(-kHalf) / peak, codes, sum_xl, sum_l2);
  float scale = sum_l2 != 0 ? sum_xl / sum_l2 : 0.0f;
  float best = scale * sum_xl;
  int8_t trial[kN];
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    grid(-(float(kHalf) + 0.1f * float(k)) / peak, trial, sum_xl, sum_l2);
    if (sum_l2 > 0 && sum_xl * sum_xl > best * sum_l2) {
      std::memcpy(codes, trial, kN);
      scale = sum_xl / sum_l2, best = scale * sum_xl;
    }
  }
  return scale;
}

template float fit_symmetric<16, 32>(const float*, const float*, int8_t*);
template float fit_symmetric<32, 8>(const float*, const float*, int8_t*);
template float fit_symmetric<32, 16>(const float*, const float*, int8_t*);

// Q6_K: sixteen sub-blocks of 16 with signed 8-bit scales in units of one f16 step chosen
// so the sub-block scale of largest magnitude maps to −128.
void encode_q6_k(const float* x, BlockQ6_K* out, size_t n, const float* importance) {
  for (size_t b = 0; b < n / kSuperBlock; ++b, x += kSuperBlock) {
    BlockQ6_K& y = out[b];
    int8_t codes[kSuperBlock];
    float scale[16], amax = 0, peak = 0;
    for (int s = 0; s < 16; ++s) {
      const float* w = importance ? importance + kSuperBlock * b + 16 * s : nullptr;
      scale[s] = fit_symmetric<16, 32>(x + 16 * s, w, codes + 16 * s);
      if (std::fabs(scale[s]) > amax) amax = std::fabs(scale[s]), peak = scale[s];
    }
    if (amax < kAllZero) {
      std::memset(&y, 0, sizeof y);  // d = +0 as well
      continue;
    }
    const float inv = -128.f / peak;
    y.d = to_half(1 / inv);
    for (int s = 0; s < 16; ++s) y.scales[s] = int8_t(std::min(127, round_nearest(inv * scale[s])));
    for (int s = 0; s < 16; ++s) {
      const float d = f16_to_f32(y.d) * float(y.scales[s]);
      if (d == 0) continue;
      for (int i = 0; i < 16; ++i) {
        const int l = std::clamp(round_nearest(x[16 * s + i] / d), -32, 31);
        codes[16 * s + i] = int8_t(l + 32);
      }
    }
    // Per half of 128: ql[l] holds values l (low nibble) and l + 64 (high), ql[l + 32]
    // values l + 32 and l + 96; qh[l] holds the top two bits of l, l + 32, l + 64, l + 96.
    for (int half = 0; half < 2; ++half) {
      const int8_t* c = codes + 128 * half;
      uint8_t* ql = y.ql + 64 * half;
      uint8_t* qh = y.qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((c[l] & 0xf) | ((c[l + 64] & 0xf) << 4));
        ql[l + 32] = uint8_t((c[l + 32] & 0xf) | ((c[l + 96] & 0xf) << 4));
        qh[l] = uint8_t((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) |
                        ((c[l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace kquant

using namespace kquant;

// ---- Legacy 32-value blocks -------------------------------------------------------------

// Q5_0: like Q4_0 with one more bit; the value of largest magnitude maps exactly to −16.
void quantize_q5_0(const float* x, BlockQ5_0* out, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0, peak = 0;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), peak = x[j];
    const float d = peak / -16.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = to_half(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int lo = std::min(31, int(int8_t(truncate_x86(x[j] * id + 16.5f))));
      const int hi = std::min(31, int(int8_t(truncate_x86(x[j + 16] * id + 16.5f))));
      out[b].qs[j] = uint8_t((lo & 0xf) | ((hi & 0xf) << 4));
      qh |= uint32_t((lo >> 4) & 1) << j | uint32_t((hi >> 4) & 1) << (j + 16);
    }
    std::memcpy(out[b].qh, &qh, 4);
  }
}

// Q5_1: min/max affine grid of 32 steps; codes are truncated after +0.5, not clamped.
void quantize_q5_1(const float* x, BlockQ5_1* out, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32) {
    // Start from ±FLT_MAX, not x[0]: a NaN then never becomes the min or the max.
    float lo = std::numeric_limits<float>::max(), hi = -std::numeric_limits<float>::max();
    for (int j = 0; j < 32; ++j) {
      if (x[j] < lo) lo = x[j];
      if (x[j] > hi) hi = x[j];
    }
    const float d = (hi - lo) / 31.0f, id = d != 0 ? 1.0f / d : 0.0f;
    out[b].d = to_half(d);
    out[b].m = to_half(lo);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const uint8_t q0 = uint8_t(truncate_x86((x[j] - lo) * id + 0.5f));
      const uint8_t q1 = uint8_t(truncate_x86((x[j + 16] - lo) * id + 0.5f));
      out[b].qs[j] = uint8_t((q0 & 0xf) | ((q1 & 0xf) << 4));
      qh |= uint32_t((q0 >> 4) & 1) << j | uint32_t((q1 >> 4) & 1) << (j + 16);
    }
    std::memcpy(out[b].qh, &qh, 4);
  }
}

// ---- K-quants ---------------------------------------------------------------------------

void quantize_q4_k(const float* x, BlockQ4_K* out, size_t n) {
  quantize_k_affine<BlockQ4_K, 4>(x, out, n, {15, -1.0f, 0.1f, 20});
}

void quantize_q5_k(const float* x, BlockQ5_K* out, size_t n) {
  quantize_k_affine<BlockQ5_K, 5>(x, out, n, {31, -0.5f, 0.1f, 15});
}

void quantize_q6_k(const float* x, BlockQ6_K* out, size_t n) { encode_q6_k(x, out, n, nullptr); }

}  // namespace mcw
