// Which SIMD paths this CPU can run. Kernels are compiled once per path with target
// attributes and pick one at run time; MCW_CPU=generic|avx2|avx512 caps the choice so
// that tests can exercise every path on one machine.
#pragma once

namespace mcw {

enum class SimdLevel { Generic = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  SimdLevel level = SimdLevel::Generic;  // best usable level after the MCW_CPU cap
};

const CpuFeatures& cpu_features();
const char* simd_level_name(SimdLevel level);

// For tests and benchmarks: force a level (clamped to what the CPU supports).
void set_simd_level(SimdLevel level);

}  // namespace mcw
