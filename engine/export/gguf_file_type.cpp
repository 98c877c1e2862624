#include "engine/export/gguf_file_type.h"

namespace mcw {
namespace {

using R = GgufTensorRole;

// Written from llama.cpp's llama_ftype values and llama_ftype_get_default_type.
const std::vector<GgufFileType> kFileTypes = {
    {"F32", 0, DType::F32},      {"F16", 1, DType::F16},      {"BF16", 32, DType::BF16},
    {"Q8_0", 7, DType::Q8_0},    {"Q4_0", 2, DType::Q4_0},    {"Q4_1", 3, DType::Q4_1},
    {"Q5_0", 8, DType::Q5_0},    {"Q5_1", 9, DType::Q5_1},    {"Q4_K_S", 14, DType::Q4_K},
    {"Q4_K_M", 15, DType::Q4_K}, {"Q5_K_S", 16, DType::Q5_K}, {"Q5_K_M", 17, DType::Q5_K},
    {"Q6_K", 18, DType::Q6_K},
};

bool quantised(DType t) { return is_block_type(t); }

// llama.cpp's rule for which layers of a mix get more bits: the first and last eighth,
// and every third layer between them.
bool use_more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

// llama.cpp's fallback for rows that are not whole blocks of the chosen type.
DType fallback(DType t, int64_t cols) {
  if (cols % dtype_info(t).block == 0) return t;
  switch (t) {
    case DType::Q4_K:
      t = DType::Q5_0;
      break;
    case DType::Q5_K:
      t = DType::Q5_1;
      break;
    case DType::Q6_K:
      t = DType::Q8_0;
      break;
    case DType::Q2_K:
    case DType::Q3_K:
      t = DType::Q4_0;
      break;
    case DType::IQ4_XS:
      t = DType::IQ4_NL;
      break;
    default:
      break;
  }
  return cols % dtype_info(t).block == 0 ? t : DType::F16;
}

}  // namespace

const std::vector<GgufFileType>& gguf_file_types() { return kFileTypes; }

const GgufFileType* find_gguf_file_type(std::string_view name) {
  for (const GgufFileType& t : kFileTypes)
    if (t.name == name) return &t;
  return nullptr;
}

std::string gguf_file_type_list() {
  std::string s;
  for (const GgufFileType& t : kFileTypes) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

DType gguf_tensor_type(const GgufFileType& ft, const GgufTensorPlace& t) {
  if (!t.matrix) return DType::F32;
  DType type = ft.base;
  if (!quantised(type)) return type;
  const std::string_view f = ft.name;
  const bool k_m = f == "Q4_K_M" || f == "Q5_K_M";
  const bool is_70b = t.n_layers == 80;  // llama.cpp's LLM_TYPE_70B for llama and qwen2
  if (t.role == R::Output || (t.tied_embeddings && t.role == R::TokenEmbd)) {
    // Output (and embeddings shared with it): Q6_K, or Q8_0 when already Q8_0 or when the
    // rows are not whole blocks of the file's type.
    if (t.cols % dtype_info(type).block != 0)
      type = DType::Q8_0;
    else if (type != DType::Q8_0)
      type = DType::Q6_K;
  } else if (t.role == R::AttnV || t.role == R::AttnQkv) {
    // llama.cpp (8784689) counts a fused attn_qkv as an attn_v (category_is_attn_v); its
    // separate attn_qkv rule (Q4_K_M: Q5_K) comes after and is never reached.
    if (k_m && use_more_bits(t.layer, t.n_layers))
      type = DType::Q6_K;
    else if (f == "Q4_K_S" && t.layer < 4)
      type = DType::Q5_K;
    if (is_70b && (type == DType::Q3_K || type == DType::Q4_K)) type = DType::Q5_K;
  } else if (t.role == R::FfnDown) {
    if (k_m && use_more_bits(t.layer, t.n_layers))
      type = DType::Q6_K;
    else if (f == "Q4_K_S" && t.layer < t.n_layers / 8)
      type = DType::Q5_K;
  }
  return fallback(type, t.cols);
}

}  // namespace mcw
