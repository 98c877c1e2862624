// Which SIMD paths this CPU can run. Kernels are compiled once per path with target
// attributes and pick one at run time; MCW_CPU=generic|avx2|avx2-novnni caps the choice so
// that tests can exercise every path on one machine.
#pragma once

namespace mcw {

enum class SimdLevel { Generic = 0, Avx2 = 1, Avx512 = 2 };

// vpdpbusd on 256-bit registers, for the AVX2 level's integer dots: the VEX form (AVX-VNNI:
// Alder Lake and later client cores, Sierra Forest, Zen 5), else the EVEX form (AVX-512 VNNI
// with VL, when the level is capped at AVX2 on an AVX-512 CPU), else none (vpmaddubsw).
enum class Vnni256 { None = 0, Evex = 1, Vex = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, avxvnni = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  SimdLevel level = SimdLevel::Generic;  // best usable level after the MCW_CPU cap
  Vnni256 vnni256 = Vnni256::None;       // after the MCW_CPU=avx2-novnni cap
};

const CpuFeatures& cpu_features();
const char* simd_level_name(SimdLevel level);

// For tests and benchmarks: force a level (clamped to what the CPU supports).
void set_simd_level(SimdLevel level);
// For tests and benchmarks: allow the 256-bit vpdpbusd (the CPU's form) or not.
void set_vnni256(bool allowed);

}  // namespace mcw
