// Internal: what the small-m products' kernels share: where they put a result (Y[i, r]
// gets v (+ bias[r]), or has it added when accumulating) and the dispatch on m.
#pragma once
#include <cstdint>
#include <type_traits>

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

// f(std::integral_constant<int, M>) for M = m in 1..8: kernels keep M rows of x in registers.
template <class F>
void with_m(int64_t m, F&& f) {
  switch (m) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    default: return f(std::integral_constant<int, 8>{});
  }
}

}  // namespace mcw
