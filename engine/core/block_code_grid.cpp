#include "engine/core/block_code_grid.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"

namespace mcw {

float CodeGrid::value(int l) const { return scale * float(l - zero) - min; }

int CodeGrid::nearest(float v) const {
  const double guess = std::nearbyint((double(v) + double(min)) / double(scale)) + zero;
  if (scale == 0.0f || !std::isfinite(guess)) return std::clamp(zero, lo, hi);
  const int l = int(std::clamp(guess, double(lo), double(hi)));
  // The division rounds; the neighbours settle which code's float value is nearest.
  int best = l;
  for (int c = std::max(lo, l - 1); c <= std::min(hi, l + 1); ++c)
    if (std::fabs(value(c) - v) < std::fabs(value(best) - v) ||
        (std::fabs(value(c) - v) == std::fabs(value(best) - v) && c < best))
      best = c;
  return best;
}

bool has_code_grid(DType t) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

namespace {

void fill(CodeGrid* g, int n, CodeGrid value) { std::fill(g, g + n, value); }

// Q4_K / Q5_K: sub-block j of 32 values, (d·sc)·q − dmin·m.
template <class Block>
void k_affine_grids(const Block& b, int hi, CodeGrid* g) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    kquant_scale_min(j, b.scales, sc, m);
    fill(g + 32 * j, 32, {d * float(sc), dmin * float(m), 0, 0, hi});
  }
}

// Legacy 32-value blocks: value j's low nibble in byte j % 16 (high half for j ≥ 16).
void pack_nibbles(const int* codes, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t((codes[j] & 0xf) | ((codes[j + 16] & 0xf) << 4));
}
void pack_fifth_bits(const int* codes, uint8_t* qh) {
  uint32_t bits = 0;
  for (int j = 0; j < 32; ++j) bits |= uint32_t((codes[j] >> 4) & 1) << j;
  std::memcpy(qh, &bits, 4);
}

// Q4_K / Q5_K: each 64 values share 32 bytes, the first 32 in the low nibbles; Q5_K's fifth
// bit of value 64p + 32h + l is bit 2p + h of qh[l].
void pack_k_affine(const int* codes, uint8_t* qs, uint8_t* qh) {
  if (qh) std::memset(qh, 0, 32);
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l) {
      const int a = codes[64 * p + l], b = codes[64 * p + 32 + l];
      qs[32 * p + l] = uint8_t((a & 0xf) | ((b & 0xf) << 4));
      if (qh) qh[l] |= uint8_t((((a >> 4) & 1) << (2 * p)) | (((b >> 4) & 1) << (2 * p + 1)));
    }
}

// Q6_K: in each half of 128, value 32p + l has its low nibble in byte l + 32·(p % 2) of ql
// (high nibble when p ≥ 2) and its top two bits at bits 2p of qh[l].
void pack_q6_k(const int* codes, BlockQ6_K& b) {
  for (int half = 0; half < 2; ++half) {
    uint8_t* ql = b.ql + 64 * half;
    uint8_t* qh = b.qh + 32 * half;
    const int* c = codes + 128 * half;
    for (int l = 0; l < 32; ++l) {
      ql[l] = uint8_t((c[l] & 0xf) | ((c[l + 64] & 0xf) << 4));
      ql[l + 32] = uint8_t((c[l + 32] & 0xf) | ((c[l + 96] & 0xf) << 4));
      qh[l] = uint8_t(((c[l] >> 4) & 3) | (((c[l + 32] >> 4) & 3) << 2) |
                      (((c[l + 64] >> 4) & 3) << 4) | (((c[l + 96] >> 4) & 3) << 6));
    }
  }
}

}  // namespace

void block_code_grids(DType t, const void* block, CodeGrid* g) {
  switch (t) {
    case DType::Q8_0:
      return fill(g, 32, {f16_to_f32(static_cast<const BlockQ8_0*>(block)->d), 0, 0, -127, 127});
    case DType::Q4_0:
      return fill(g, 32, {f16_to_f32(static_cast<const BlockQ4_0*>(block)->d), 0, 8, 0, 15});
    case DType::Q5_0:
      return fill(g, 32, {f16_to_f32(static_cast<const BlockQ5_0*>(block)->d), 0, 16, 0, 31});
    case DType::Q4_1: {
      const auto* b = static_cast<const BlockQ4_1*>(block);
      return fill(g, 32, {f16_to_f32(b->d), -f16_to_f32(b->m), 0, 0, 15});
    }
    case DType::Q5_1: {
      const auto* b = static_cast<const BlockQ5_1*>(block);
      return fill(g, 32, {f16_to_f32(b->d), -f16_to_f32(b->m), 0, 0, 31});
    }
    case DType::Q4_K:
      return k_affine_grids(*static_cast<const BlockQ4_K*>(block), 15, g);
    case DType::Q5_K:
      return k_affine_grids(*static_cast<const BlockQ5_K*>(block), 31, g);
    case DType::Q6_K: {
      const auto* b = static_cast<const BlockQ6_K*>(block);
      const float d = f16_to_f32(b->d);
      for (int j = 0; j < 16; ++j) fill(g + 16 * j, 16, {d * float(b->scales[j]), 0, 32, 0, 63});
      return;
    }
    default:
      throw Error(
          "", std::string("no code grid for blocks of type ") + std::string(dtype_info(t).name));
  }
}

void set_block_codes(DType t, void* block, const int* codes) {
  switch (t) {
    case DType::Q8_0: {
      auto* b = static_cast<BlockQ8_0*>(block);
      for (int j = 0; j < 32; ++j) b->qs[j] = int8_t(codes[j]);
      return;
    }
    case DType::Q4_0:
      return pack_nibbles(codes, static_cast<BlockQ4_0*>(block)->qs);
    case DType::Q4_1:
      return pack_nibbles(codes, static_cast<BlockQ4_1*>(block)->qs);
    case DType::Q5_0: {
      auto* b = static_cast<BlockQ5_0*>(block);
      return pack_nibbles(codes, b->qs), pack_fifth_bits(codes, b->qh);
    }
    case DType::Q5_1: {
      auto* b = static_cast<BlockQ5_1*>(block);
      return pack_nibbles(codes, b->qs), pack_fifth_bits(codes, b->qh);
    }
    case DType::Q4_K:
      return pack_k_affine(codes, static_cast<BlockQ4_K*>(block)->qs, nullptr);
    case DType::Q5_K: {
      auto* b = static_cast<BlockQ5_K*>(block);
      return pack_k_affine(codes, b->qs, b->qh);
    }
    case DType::Q6_K:
      return pack_q6_k(codes, *static_cast<BlockQ6_K*>(block));
    default:
      throw Error(
          "", std::string("no code grid for blocks of type ") + std::string(dtype_info(t).name));
  }
}

}  // namespace mcw
