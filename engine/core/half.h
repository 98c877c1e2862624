// Exact IEEE conversions between f32 and the 16-bit float formats: round to nearest
// even, subnormals exact, Inf kept, NaN kept as NaN (with as much payload as fits).
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>

namespace mcw {

uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }
inline uint16_t f32_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) {  // NaN: truncate, but never into Inf
    uint16_t h = uint16_t(x >> 16);
    return (h & 0x7f) ? h : uint16_t(h | 0x40);
  }
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// Bulk versions (vectorised where the CPU allows).
void f16_to_f32_row(const uint16_t* src, float* dst, size_t n);
void bf16_to_f32_row(const uint16_t* src, float* dst, size_t n);
void f32_to_f16_row(const float* src, uint16_t* dst, size_t n);
void f32_to_bf16_row(const float* src, uint16_t* dst, size_t n);

}  // namespace mcw
