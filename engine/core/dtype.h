// Element types of stored tensors. Block types (Q8_0, Q4_0, Q4_1, and the ones only read:
// Q5_0, Q5_1, the K-quants, IQ4_NL, IQ4_XS) pack `block` values into `block_bytes`, with the
// byte layouts of ggml/GGUF (see blocks.h, kquant_blocks.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mcw {

enum class DType : uint8_t {
  F32, F16, BF16, F64, F8_E4M3, F8_E5M2,
  I8, I16, I32, I64, U8, U16, U32, U64, BOOL,
  Q8_0, Q4_0, Q4_1,
  Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS,
  // Values only a TensorDecoder can produce (tensor.h): a layout spread over several
  // stored parts, such as a GPTQ checkpoint's qweight, qzeros, scales and g_idx. No file
  // stores this dtype; it has no byte size per value.
  Packed,
};

struct DTypeInfo {
  std::string_view name;  // the safetensors spelling where one exists
  int block;              // values per block (1 for plain types)
  int block_bytes;        // bytes per block
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
std::optional<DType> dtype_from_name(std::string_view name);
inline bool is_block_type(DType t) { return dtype_info(t).block > 1; }

// Bytes for n values, or nullopt when n is not a whole number of blocks, overflows, or the
// type has no byte layout (Packed).
std::optional<uint64_t> dtype_bytes(DType t, uint64_t n);

// Product of dims, or nullopt on a negative dimension or overflow past 2^62.
template <class Range>
std::optional<uint64_t> checked_numel(const Range& shape) {
  uint64_t n = 1;
  for (auto d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > (uint64_t(1) << 62) / uint64_t(d)) return std::nullopt;
    n *= uint64_t(d);
  }
  return n;
}

}  // namespace mcw
