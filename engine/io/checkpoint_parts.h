// Pieces shared by the readers of quantised checkpoints (quantized_checkpoint.cpp,
// compressed_tensors.cpp): packed codes, scales in the checkpoint's dtype, config fields.
#pragma once
#include <bit>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/io/model_file.h"

namespace mcw {

// Code `index` of a little-endian bitstream of 32-bit words, word w at words[w * stride]
// (a code may straddle two words).
inline uint32_t stream_code(const uint32_t* words, int64_t stride, int64_t index, int bits) {
  const int64_t bit = index * bits, w = bit >> 5;
  const int shift = int(bit & 31);
  uint64_t v = words[w * stride] >> shift;
  if (shift + bits > 32) v |= uint64_t(words[(w + 1) * stride]) << (32 - shift);
  return uint32_t(v) & ((1u << bits) - 1);
}

// Entry i of an array stored as F16, BF16 or F32 (scales; sparse-24 values).
inline float scale_value(DType t, const void* data, int64_t i) {
  switch (t) {
    case DType::F16:
      return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    default:
      return static_cast<const float*>(data)[i];
  }
}

// v rounded to the scales' dtype: the reference tools dequantise (q − z) · s in that dtype
// (an integer times an f16 or bf16 is exact in f32, so one rounding gives their value).
// f16's normal range rounds in place (to nearest even on the 13 dropped bits, as
// f32_to_f16 does); the rest goes through the exact conversion.
inline float round_to_dtype(DType t, float v) {
  if (t == DType::F16) {
    uint32_t x = std::bit_cast<uint32_t>(v);
    const uint32_t a = x & 0x7fffffffu;
    if (a < 0x38800000u || a >= 0x477ff000u) return f16_to_f32(f32_to_f16(v));
    x += 0xfffu + ((x >> 13) & 1u);
    return std::bit_cast<float>(x & ~0x1fffu);
  }
  if (t == DType::BF16) return bf16_to_f32(f32_to_bf16(v));
  return v;
}

inline const nlohmann::ordered_json* member(const nlohmann::ordered_json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

inline int64_t int_member(const nlohmann::ordered_json& q, const char* key, int64_t fallback,
                          const std::string& path) {
  const auto* v = member(q, key);
  if (!v) return fallback;
  if (!v->is_number_integer())
    throw Error(path, std::string("quantization_config.") + key + " is not an integer");
  return v->get<int64_t>();
}

inline bool bool_member(const nlohmann::ordered_json& q, const char* key, bool fallback,
                        const std::string& path) {
  const auto* v = member(q, key);
  if (!v) return fallback;
  if (!v->is_boolean())
    throw Error(path, std::string("quantization_config.") + key + " is not true or false");
  return v->get<bool>();
}

inline std::string string_member(const nlohmann::ordered_json& q, const char* key,
                                 const std::string& fallback, const std::string& path) {
  const auto* v = member(q, key);
  if (!v) return fallback;
  if (!v->is_string())
    throw Error(path, std::string("quantization_config.") + key + " is not a string");
  return v->get<std::string>();
}

// Replaces the parts of each presented layer (`presented`: layer prefix -> its one weight)
// by that weight, at the place of the layer's first part in file order; part_of[k] is
// tensor k's layer prefix, empty when it is no part. Parts of layers not presented stay.
inline void replace_layer_parts(ModelFile& model, const std::vector<std::string>& part_of,
                                const std::map<std::string, Tensor>& presented) {
  std::vector<Tensor> out;
  std::map<std::string, bool> placed;
  for (size_t k = 0; k < model.tensors.size(); ++k) {
    const auto it = part_of[k].empty() ? presented.end() : presented.find(part_of[k]);
    if (it == presented.end()) {
      out.push_back(model.tensors[k]);
    } else if (!placed[it->first]) {
      placed[it->first] = true;
      out.push_back(it->second);
    }
  }
  model.tensors = std::move(out);
}

}  // namespace mcw
