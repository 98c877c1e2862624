#include "engine/core/dtype.h"

#include <array>

namespace mcw {

static constexpr std::array<DTypeInfo, 28> kInfo = {{
    {"F32", 1, 4},      {"F16", 1, 2},     {"BF16", 1, 2},    {"F64", 1, 8},
    {"F8_E4M3", 1, 1},  {"F8_E5M2", 1, 1}, {"I8", 1, 1},      {"I16", 1, 2},
    {"I32", 1, 4},      {"I64", 1, 8},     {"U8", 1, 1},      {"U16", 1, 2},
    {"U32", 1, 4},      {"U64", 1, 8},     {"BOOL", 1, 1},    {"Q8_0", 32, 34},
    {"Q4_0", 32, 18},   {"Q4_1", 32, 20},   {"Q5_0", 32, 22},  {"Q5_1", 32, 24},
    {"Q2_K", 256, 84},  {"Q3_K", 256, 110}, {"Q4_K", 256, 144}, {"Q5_K", 256, 176},
    {"Q6_K", 256, 210}, {"IQ4_NL", 32, 18}, {"IQ4_XS", 256, 136},
    {"packed", 1, 0},
}};

const DTypeInfo& dtype_info(DType t) { return kInfo[size_t(t)]; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (size_t i = 0; i < kInfo.size(); ++i)
    if (kInfo[i].name == name && DType(i) != DType::Packed) return DType(i);
  return std::nullopt;
}

std::optional<uint64_t> dtype_bytes(DType t, uint64_t n) {
  const DTypeInfo& info = dtype_info(t);
  if (info.block_bytes == 0 || n % uint64_t(info.block)) return std::nullopt;
  const uint64_t blocks = n / uint64_t(info.block);
  if (blocks > (uint64_t(1) << 62) / uint64_t(info.block_bytes)) return std::nullopt;
  return blocks * uint64_t(info.block_bytes);
}

}  // namespace mcw
