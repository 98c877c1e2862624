// Internal: where a small-m product's kernels put a result. Y[i, r] gets v (+ bias[r]),
// or has it added when accumulating: the one store the per-ISA GEMV paths share.
#pragma once
#include <cstdint>

namespace mcw {

struct GemvOutput {
  float* y;
  int64_t ldy;
  const float* bias;
  bool accumulate;
  void store(int64_t i, int64_t r, float v) const {
    if (bias) v += bias[r];
    float& o = y[i * ldy + r];
    o = accumulate ? o + v : v;
  }
};

}  // namespace mcw
