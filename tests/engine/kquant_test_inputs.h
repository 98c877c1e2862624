// The deterministic inputs of the encoder tests (test_kquant_encode*.cpp), shared with the
// out-of-tree harness that produced their golden hashes from ggml (its gen.h is the C twin):
// splitmix64 and exactly rounded float arithmetic only (no libm, no a·b + c that a compiler
// could fuse), so the values are the same on any IEEE machine and in C as in C++.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace mcw::kquant_test {

class InputGen {
 public:
  explicit InputGen(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float u01() { return float(next() >> 40) * 0x1p-24f; }  // [0, 1), 24 bits, exact
  float sym() { return 2.0f * u01() - 1.0f; }             // exact: no rounding to fuse away
  float gauss() {                                         // Irwin-Hall(4), unit variance
    const float a = u01(), b = u01(), c = u01(), d = u01();
    return (((a + b) + c) + d - 2.0f) * 1.7320508f;
  }
  int uniform(int lo, int hi) { return lo + int(next() % uint64_t(hi - lo + 1)); }

 private:
  uint64_t s_;
};

inline float pow2(int e) {  // exact 2^e, -149 <= e <= 127
  return std::bit_cast<float>(e < -126 ? 1u << (e + 149) : uint32_t(e + 127) << 23);
}

// 256 values of one kind: 0 uniform, 1 gaussian, 2 gaussian with outliers, 3 zeros,
// 4 constant, 5 subnormal/tiny, 6 huge (up to ~1e34), 7 sub-blocks of mixed character
// (zero, one-signed, constant, gaussian at its own scale), 8 small integers (rounding
// ties), 9 random finite bit patterns (any exponent), 10 sparse, 11 all positive.
inline void fill(InputGen& g, int kind, float* x) {
  const float sc = pow2(g.uniform(-12, 12));
  switch (kind) {
    case 0:
      for (int i = 0; i < 256; ++i) x[i] = g.sym() * sc;
      break;
    case 1:
      for (int i = 0; i < 256; ++i) x[i] = g.gauss() * sc;
      break;
    case 2: {
      const int n = g.uniform(1, 6);
      for (int i = 0; i < 256; ++i) x[i] = g.gauss() * sc;
      for (int k = 0; k < n; ++k) {
        const int at = g.uniform(0, 255);
        x[at] *= float(g.uniform(20, 200));
      }
      break;
    }
    case 3:
      for (int i = 0; i < 256; ++i) x[i] = 0.0f;
      break;
    case 4: {
      const float c = g.sym() * sc;
      for (int i = 0; i < 256; ++i) x[i] = c;
      break;
    }
    case 5: {
      const float t = pow2(g.uniform(-149, -120));
      for (int i = 0; i < 256; ++i) x[i] = g.gauss() * t;
      break;
    }
    case 6: {
      const float h = pow2(g.uniform(60, 110));
      for (int i = 0; i < 256; ++i) x[i] = g.gauss() * h;
      break;
    }
    case 7:
      for (int s = 0; s < 8; ++s) {
        float* y = x + 32 * s;
        const int k = g.uniform(0, 5);
        const float ss = pow2(g.uniform(-20, 20));
        const float c = g.sym() * ss;
        for (int i = 0; i < 32; ++i) {
          const float v = g.gauss() * ss;
          y[i] = k == 0 ? 0.0f : k == 1 ? std::fabs(v) : k == 2 ? -std::fabs(v) : k == 3 ? c : v;
        }
      }
      break;
    case 8:
      for (int i = 0; i < 256; ++i) x[i] = float(g.uniform(-8, 8)) * sc;
      break;
    case 9:
      for (int i = 0; i < 256; ++i) {
        uint32_t u = uint32_t(g.next());
        if (((u >> 23) & 0xff) == 0xff) u &= ~(1u << 30);  // Inf/NaN exponent -> finite
        x[i] = std::bit_cast<float>(u);
      }
      break;
    case 10:
      for (int i = 0; i < 256; ++i) x[i] = (g.next() & 15) == 0 ? g.gauss() * sc : 0.0f;
      break;
    case 11:
      for (int i = 0; i < 256; ++i) x[i] = (g.u01() + 1.0f) * sc;
      break;
  }
}

}  // namespace mcw::kquant_test
