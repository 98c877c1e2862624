// Importance-weighted encoders: the bytes llama-quantize writes with --imatrix, i.e. ggml's
// quantize_{q4_0,q4_1,q5_0,q5_1,q4_K,q5_K,q6_K} given a non-null importance row (ggml's
// quantize_row_*_impl). The importance matrix (llama-imatrix) holds, per input column of a
// weight tensor, the mean square of the activations that column multiplies; a value whose
// column sees large activations contributes more to the layer's output error, so the
// block fits below minimise Σ w·(x − x̂)² with w built from it instead of from x alone.
//
// Per type (qw: the importance of each value; σ²: a mean square of the data):
//   Q4_0, Q5_0  symmetric fit (fit_symmetric) with w = qw·sqrt(σ² + x²), σ² over the row
//   Q4_1, Q5_1  affine fit (fit_affine) with the same w over 37 trial grids (top − 0.9 to
//               top + 0.9 in steps of 0.05; the reference Q4_K / Q5_K search fewer)
//   Q4_K, Q5_K  affine fit per sub-block (the same 37 grids), w = qw·sqrt(σ² + x²) with
//               σ² = 2·mean x² of the super-block, then the 8 scales and 8 lifts quantised to 6
//               bits by a weighted search of their own (fit_super_step), each sub-block weighing by
//               its total w, instead of mapping the largest to 63
//   Q6_K        symmetric fit per 16 values with w = qw itself (the reference uses x²)
// Without an importance row ggml falls back to its reference encoders for every one of
// these types, and so does from_f32_weighted. Q8_0 has no weighted variant in ggml.
//
// Byte-exactness rules are those of kquant_encode.cpp (float operations in the reference's
// order, round_nearest, explicit narrowing, no contraction); verified against ggml d99724f
// in tests/engine/test_kquant_encode_weighted.cpp.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "engine/core/blocks.h"
#include "engine/core/kquant_blocks.h"
#include "engine/core/kquant_encode_util.h"

namespace mcw {
namespace {

using namespace kquant;

// ---- Legacy 32-value blocks -------------------------------------------------------------

// σ² of the legacy types: Σx² over the whole row, summed left to right in float, over n.
float row_mean_square(const float* x, size_t n) {
  float sum = 0;
  for (size_t j = 0; j < n; ++j) sum += x[j] * x[j];
  return sum / float(n);
}

// w_j = qw_j·sqrt(σ² + x_j²): the importance, scaled up for values large against the row.
void legacy_weights(const float* x, const float* qw, float sigma2, float* w) {
  for (int j = 0; j < kQBlock; ++j) w[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

// Q4_0 / Q5_0 share one fit; codes come back as l + half, so 0..15 or 0..31.
template <int kHalf>
void fit_legacy_symmetric(const float* x, const float* qw, float sigma2, uint16_t& d,
                          int8_t* codes) {
  float w[kQBlock];
  legacy_weights(x, qw, sigma2, w);
  d = to_half(fit_symmetric<kQBlock, kHalf>(x, w, codes));
}

// The offset-carrying 32-value types search 37 grids from top − 0.9 in steps of 0.05.
constexpr float kLegacyFirst = -0.9f, kLegacyStep = 0.05f;
constexpr int kLegacyTrials = 36;

template <int kTop>
void fit_legacy_affine(const float* x, const float* qw, float sigma2, uint16_t& d, uint16_t& m,
                       uint8_t* codes) {
  float w[kQBlock], lift;
  legacy_weights(x, qw, sigma2, w);
  const AffineSearch search{kTop, kLegacyFirst, kLegacyStep, kLegacyTrials};
  d = to_half(fit_affine(x, w, search, codes, lift));
  m = to_half(-lift);
}

// The fifth bits of 32 codes: bit j for value j, bit j + 16 for value j + 16.
template <class Code>
void pack_q5(const Code* codes, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const unsigned lo = uint8_t(codes[j]), hi = uint8_t(codes[j + 16]);
    qs[j] = uint8_t((lo & 0xf) | ((hi & 0xf) << 4));
    qh |= ((lo >> 4) & 1u) << j | ((hi >> 4) & 1u) << (j + 16);
  }
  std::memcpy(qh_bytes, &qh, 4);
}

void quantize_q4_0_weighted(const float* x, BlockQ4_0* out, size_t n, const float* qw,
                             std::optional<float> row_ms) {
  const float sigma2 = row_ms ? *row_ms : row_mean_square(x, n);
  for (size_t b = 0; b < n / kQBlock; ++b) {
    int8_t codes[kQBlock];
    fit_legacy_symmetric<8>(x + kQBlock * b, qw + kQBlock * b, sigma2, out[b].d, codes);
    for (int j = 0; j < 16; ++j) out[b].qs[j] = uint8_t(codes[j] | (codes[j + 16] << 4));
  }
}

void quantize_q5_0_weighted(const float* x, BlockQ5_0* out, size_t n, const float* qw,
                             std::optional<float> row_ms) {
  const float sigma2 = row_ms ? *row_ms : row_mean_square(x, n);
  for (size_t b = 0; b < n / kQBlock; ++b) {
    int8_t codes[kQBlock];
    fit_legacy_symmetric<16>(x + kQBlock * b, qw + kQBlock * b, sigma2, out[b].d, codes);
    pack_q5(codes, out[b].qs, out[b].qh);
  }
}

void quantize_q4_1_weighted(const float* x, BlockQ4_1* out, size_t n, const float* qw,
                             std::optional<float> row_ms) {
  const float sigma2 = row_ms ? *row_ms : row_mean_square(x, n);
  for (size_t b = 0; b < n / kQBlock; ++b) {
    uint8_t codes[kQBlock];
    fit_legacy_affine<15>(x + kQBlock * b, qw + kQBlock * b, sigma2, out[b].d, out[b].m, codes);
    for (int j = 0; j < 16; ++j) out[b].qs[j] = uint8_t(codes[j] | (codes[j + 16] << 4));
  }
}

void quantize_q5_1_weighted(const float* x, BlockQ5_1* out, size_t n, const float* qw,
                             std::optional<float> row_ms) {
  const float sigma2 = row_ms ? *row_ms : row_mean_square(x, n);
  for (size_t b = 0; b < n / kQBlock; ++b) {
    uint8_t codes[kQBlock];
    fit_legacy_affine<31>(x + kQBlock * b, qw + kQBlock * b, sigma2, out[b].d, out[b].m, codes);
    pack_q5(codes, out[b].qs, out[b].qh);
  }
}

// ---- K-quants with affine codes ---------------------------------------------------------

// The 6-bit codes of 8 sub-block values v (scales or lifts) and their common step, so that
// v_i ≈ step·code_i, minimising Σ w_i·(v_i − step·code_i)² (ggml's make_qp_quants):
//  1. the grid mapping the largest v to 63 and 8 grids nudged around it (63 ± 0.1k) are
//     scored with their own step 1/inv; the best one's inverse step is kept;
//  2. its codes (capped at 63) give the least-squares step Σwvl / Σwl²;
//  3. up to 5 sweeps re-round each code against the step the others imply, taking a change
//     when it raises the explained part (Σwvl)² / Σwl².
// Codes go through uint8_t unclamped below (a negative v wraps), as in the reference;
// Q5_K caps them at 63 afterwards, Q4_K does not.
float fit_super_step(const float* v, const float* w, uint8_t* codes) {
  constexpr int kN = 8, kTop = 63;
  float vmax = 0;
  for (int i = 0; i < kN; ++i) vmax = vmax > v[i] ? vmax : v[i];  // operand order kept for NaN
  if (vmax < kAllZero) {
    std::memset(codes, 0, kN);
    return 0.f;
  }
  float inv = float(kTop) / vmax;
  for (int i = 0; i < kN; ++i) codes[i] = uint8_t(round_nearest(inv * v[i]));
  const float step0 = 1 / inv;
  float best = 0;
  for (int i = 0; i < kN; ++i) {
    const float e = v[i] - step0 * float(codes[i]);
    best += w[i] * e * e;
  }
  for (int k = -4; k <= 4; ++k) {
    if (k == 0) continue;
    const float inv_k = (0.1f * float(k) + float(kTop)) / vmax;
    const float step_k = 1 / inv_k;
    float err = 0;
    for (int i = 0; i < kN; ++i) {
      const int l = std::min(kTop, round_nearest(inv_k * v[i]));
      const float e = v[i] - step_k * float(l);
      err += w[i] * e * e;
    }
    if (err < best) best = err, inv = inv_k;
  }
  float sum_vl = 0, sum_l2 = 0;
  for (int i = 0; i < kN; ++i) {
    const int l = std::min(kTop, round_nearest(inv * v[i]));
    codes[i] = uint8_t(l);
    sum_vl += w[i] * v[i] * float(l);  // the int code, even where the stored byte wrapped
    sum_l2 += w[i] * float(l) * float(l);
  }
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < kN; ++i) {
      const float c = float(codes[i]);
      float svl = sum_vl - w[i] * v[i] * c, sl2 = sum_l2 - w[i] * c * c;
      if (!(svl > 0 && sl2 > 0)) continue;
      const int l = std::min(kTop, round_nearest(v[i] * sl2 / svl));
      if (l == int(codes[i])) continue;
      svl += w[i] * v[i] * float(l);
      sl2 += w[i] * float(l) * float(l);
      if (svl * svl * sum_l2 > sum_vl * sum_vl * sl2) {
        codes[i] = uint8_t(l), sum_vl = svl, sum_l2 = sl2;
        ++changed;
      }
    }
    if (!changed) break;
  }
  return sum_l2 > 0.0f ? sum_vl / sum_l2 : 0.0f;
}

template <class Block, int kBits>
void quantize_k_affine_weighted(const float* x, Block* out, size_t n, const float* importance) {
  const AffineSearch search{(1 << kBits) - 1, kLegacyFirst, kLegacyStep, kLegacyTrials};
  for (size_t b = 0; b < n / kSuperBlock; ++b, x += kSuperBlock) {
    Block& y = out[b];
    const float* qw = importance + kSuperBlock * b;
    float sum_x2 = 0;
    for (int l = 0; l < kSuperBlock; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2.0f * sum_x2 / float(kSuperBlock);
    uint8_t codes[kSuperBlock];
    float scale[8], lift[8], sub_weight[8], w[kSub];
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + kSub * j;
      for (int l = 0; l < kSub; ++l) w[l] = qw[kSub * j + l] * std::sqrt(sigma2 + xs[l] * xs[l]);
      float sum_w = 0;
      for (int l = 0; l < kSub; ++l) sum_w += w[l];
      sub_weight[j] = sum_w;
      scale[j] = fit_affine(xs, w, search, codes + kSub * j, lift[j]);
    }
    uint8_t ls[8], lm[8];
    const float d = fit_super_step(scale, sub_weight, ls);
    const float dmin = fit_super_step(lift, sub_weight, lm);
    if constexpr (kBits == 5) {
      for (int j = 0; j < 8; ++j)
        ls[j] = std::min<uint8_t>(63, ls[j]), lm[j] = std::min<uint8_t>(63, lm[j]);
    }
    pack_scale_min(ls, lm, y.scales);
    y.d = to_half(d);
    y.dmin = to_half(dmin);
    if constexpr (kBits == 4)
      finish_q4_k(x, y, codes);
    else
      finish_q5_k(x, y, codes);
  }
}

}  // namespace

void from_f32_weighted(DType t, const float* src, void* dst, size_t n, const float* importance,
                       std::optional<float> row_mean_square) {
  if (!importance) return from_f32(t, src, dst, n);
  const std::optional<float> ms = row_mean_square;
  switch (t) {
    case DType::Q4_0:
      return quantize_q4_0_weighted(src, static_cast<BlockQ4_0*>(dst), n, importance, ms);
    case DType::Q4_1:
      return quantize_q4_1_weighted(src, static_cast<BlockQ4_1*>(dst), n, importance, ms);
    case DType::Q5_0:
      return quantize_q5_0_weighted(src, static_cast<BlockQ5_0*>(dst), n, importance, ms);
    case DType::Q5_1:
      return quantize_q5_1_weighted(src, static_cast<BlockQ5_1*>(dst), n, importance, ms);
    case DType::Q4_K:
      return quantize_k_affine_weighted<BlockQ4_K, 4>(src, static_cast<BlockQ4_K*>(dst), n,
                                                      importance);
    case DType::Q5_K:
      return quantize_k_affine_weighted<BlockQ5_K, 5>(src, static_cast<BlockQ5_K*>(dst), n,
                                                      importance);
    case DType::Q6_K:
      return encode_q6_k(src, static_cast<BlockQ6_K*>(dst), n, importance);
    default:
      return from_f32(t, src, dst, n);  // no weighted variant (or no encoder at all)
  }
}

}  // namespace mcw
