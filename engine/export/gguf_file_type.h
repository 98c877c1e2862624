// llama.cpp's file types (the names `llama-quantize` takes: Q4_K_M, Q8_0, ...) and the
// per-tensor type each one picks, as llama.cpp's llama_tensor_get_type does it for the
// llama and qwen2 architectures without an importance matrix: a mix gives some tensors
// more bits (output and tied embeddings Q6_K; in the _M mixes attn_v and ffn_down of the
// first and last eighth of the layers and every third layer between them Q6_K), and a
// tensor whose rows are not whole blocks of its type falls back to a 32-value type
// (Q4_K→Q5_0, Q5_K→Q5_1, Q6_K→Q8_0), then to F16.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/dtype.h"

namespace mcw {

struct GgufFileType {
  std::string_view name;  // "Q4_K_M"
  uint32_t ftype;         // llama_ftype, written as general.file_type
  DType base;             // the type most weights get
};

// The file types MCW writes, in llama-quantize's order of its list.
const std::vector<GgufFileType>& gguf_file_types();
// nullptr for a name not in gguf_file_types() (case-sensitive, as llama-quantize).
const GgufFileType* find_gguf_file_type(std::string_view name);
// "F32, F16, BF16, Q8_0, ..." for messages.
std::string gguf_file_type_list();

// What a tensor is, for the mix. Everything not listed is Other (norms and biases are
// never quantised: they stay F32).
enum class GgufTensorRole {
  TokenEmbd,
  Output,
  AttnQ,
  AttnK,
  AttnV,
  AttnQkv,  // Phi-3's fused q/k/v
  AttnOutput,
  FfnGate,
  FfnUp,
  FfnDown,
  Other
};

struct GgufTensorPlace {
  GgufTensorRole role = GgufTensorRole::Other;
  int layer = 0;  // block index (matrices of a block)
  int n_layers = 1;
  bool tied_embeddings = false;  // the file has no output.weight
  int64_t cols = 0;              // values per row (ggml's ne[0])
  bool matrix = true;            // 2-D; vectors are never quantised
};

// The type llama.cpp gives this tensor in a file of type `ft`.
DType gguf_tensor_type(const GgufFileType& ft, const GgufTensorPlace& t);

}  // namespace mcw
