#include "engine/kernels/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdlib>
#include <cstring>

namespace mcw {

static Vnni256 detect_vnni256(const CpuFeatures& f, bool allowed) {
  if (!allowed || !f.avx2) return Vnni256::None;
  if (f.avxvnni) return Vnni256::Vex;
  return f.avx512vnni && f.avx512vl ? Vnni256::Evex : Vnni256::None;
}

static CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  // clang (14) has no "f16c" for __builtin_cpu_supports: CPUID leaf 1, ECX bit 29.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  f.f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
  // AVX-VNNI: CPUID leaf 7 subleaf 1, EAX bit 4 (not in clang 14's __builtin_cpu_supports).
  f.avxvnni = __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4));
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
  SimdLevel best = SimdLevel::Generic;
  if (f.avx2 && f.fma && f.f16c) best = SimdLevel::Avx2;
  if (best == SimdLevel::Avx2 && f.avx512f && f.avx512bw && f.avx512vl) best = SimdLevel::Avx512;
  bool vnni = true;
  if (const char* cap = std::getenv("MCW_CPU")) {
    if (!std::strcmp(cap, "generic")) best = SimdLevel::Generic;
    else if (!std::strncmp(cap, "avx2", 4) && best > SimdLevel::Avx2)
      best = SimdLevel::Avx2;
    vnni = std::strcmp(cap, "avx2-novnni") != 0;
  }
  f.level = best;
  f.vnni256 = detect_vnni256(f, vnni);
  return f;
}

static CpuFeatures& mutable_features() {
  static CpuFeatures f = detect();
  return f;
}

const CpuFeatures& cpu_features() { return mutable_features(); }

void set_simd_level(SimdLevel level) {
  static const SimdLevel hw = detect().level;
  mutable_features().level = level < hw ? level : hw;
}

void set_vnni256(bool allowed) {
  CpuFeatures& f = mutable_features();
  f.vnni256 = detect_vnni256(f, allowed);
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace mcw
