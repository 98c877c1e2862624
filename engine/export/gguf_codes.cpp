#include "engine/export/gguf_codes.h"

#include <cmath>
#include <cstring>

#include "engine/core/blocks.h"
#include "engine/core/half.h"
#include "engine/core/kquant_blocks.h"

namespace mcw {
namespace {

bool is_f16(float x) { return f16_to_f32(f32_to_f16(x)) == x; }

struct Target {
  int bits;
  bool offset;  // d·q + m (Q4_1, Q5_1) rather than d·(q − 2^(bits−1))
};

bool target_of(DType type, Target& t) {
  switch (type) {
    case DType::Q8_0:
      t = {8, false};
      return true;
    case DType::Q4_0:
      t = {4, false};
      return true;
    case DType::Q5_0:
      t = {5, false};
      return true;
    case DType::Q4_1:
      t = {4, true};
      return true;
    case DType::Q5_1:
      t = {5, true};
      return true;
    default:
      return false;
  }
}

// Packs 32 codes of `bits` (4 or 5) into the nibbles (and high bits) of a legacy block.
void put_nibbles(const uint8_t* q, uint8_t* qs, uint8_t* qh) {
  uint32_t high = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = uint8_t((q[j] & 15) | ((q[j + 16] & 15) << 4));
    high |= uint32_t((q[j] >> 4) & 1) << j;
    high |= uint32_t((q[j + 16] >> 4) & 1) << (j + 16);
  }
  if (qh) std::memcpy(qh, &high, 4);
}

}  // namespace

std::string gguf_codes_misfit(const CompressedTensor& t, DType type) {
  Target want;
  if (!target_of(type, want))
    return std::string(dtype_name(type)) + " has no place for MCW's codes";
  if (t.coding != WeightCoding::Affine) return "not affine codes";
  if (t.bits != want.bits) return std::to_string(t.bits) + "-bit codes";
  if (t.group_size != kQBlock || t.cols % kQBlock)
    return "groups of " + std::to_string(t.group_size);
  if (!t.g_idx.empty()) return "act-order groups";
  if (!t.mask.empty()) return "a sparsity mask";
  if (!t.outlier_index.empty()) return "outliers";
  if (!t.input_scale.empty()) return "an input scale";
  const float mid = float(1 << (t.bits - 1));
  for (size_t i = 0; i < t.scales.size(); ++i) {
    if (!is_f16(t.scales[i])) return "scales that are not f16 values";
    const float z = t.zero_point(i);
    if (want.offset) {
      if (z != std::nearbyint(z) || !is_f16(-t.scales[i] * z)) return "zero points −s·z not f16";
    } else if (z != mid) {
      return "zero points other than " + std::to_string(int(mid));
    }
  }
  return {};
}

void gguf_codes_row(const CompressedTensor& t, DType type, int64_t r, void* dst) {
  const int64_t groups = t.cols / kQBlock;
  uint8_t q[kQBlock];
  for (int64_t g = 0; g < groups; ++g) {
    unpack_codes_from(t.codes.data(), size_t(r * t.cols + g * kQBlock), kQBlock, t.bits, q);
    const size_t i = size_t(r * groups + g);
    const uint16_t d = f32_to_f16(t.scales[i]);
    switch (type) {
      case DType::Q8_0: {
        auto* b = static_cast<BlockQ8_0*>(dst) + g;
        b->d = d;
        for (int j = 0; j < kQBlock; ++j) b->qs[j] = int8_t(int(q[j]) - 128);
        break;
      }
      case DType::Q4_0: {
        auto* b = static_cast<BlockQ4_0*>(dst) + g;
        b->d = d;
        put_nibbles(q, b->qs, nullptr);
        break;
      }
      case DType::Q5_0: {
        auto* b = static_cast<BlockQ5_0*>(dst) + g;
        b->d = d;
        put_nibbles(q, b->qs, b->qh);
        break;
      }
      case DType::Q4_1: {
        auto* b = static_cast<BlockQ4_1*>(dst) + g;
        b->d = d, b->m = f32_to_f16(-t.scales[i] * t.zero_point(i));
        put_nibbles(q, b->qs, nullptr);
        break;
      }
      case DType::Q5_1: {
        auto* b = static_cast<BlockQ5_1*>(dst) + g;
        b->d = d, b->m = f32_to_f16(-t.scales[i] * t.zero_point(i));
        put_nibbles(q, b->qs, b->qh);
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace mcw
