// Internal: what each SIMD path of the 16-bit-weight small-m product (half_gemv_<isa>.cpp)
// provides to the driver in half_gemv.cpp. The driver owns validation and threading; a path
// computes outputs for rows [r0, r1) of W against all m (<= 8) rows of x.
#pragma once
#include <cstdint>

#include "engine/kernels/gemv_output.h"

namespace mcw::half_detail {

struct Rows {
  const uint16_t* w;  // row r at w + r·ldw, k values
  int64_t ldw, k;
  const float* x;  // row i at x + i·ldx
  int64_t ldx, m;
};

using Out = GemvOutput;

struct HalfGemvIsa {
  const char* name;
  void (*bf16)(const Rows& a, int64_t r0, int64_t r1, const Out& y);
  void (*f16)(const Rows& a, int64_t r0, int64_t r1, const Out& y);
};

const HalfGemvIsa& half_isa_generic();
const HalfGemvIsa& half_isa_avx2();    // the generic path off x86
const HalfGemvIsa& half_isa_avx512();  // the generic path off x86

}  // namespace mcw::half_detail
