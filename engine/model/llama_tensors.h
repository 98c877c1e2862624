// The llama family's tensor table (Llama 2/3, Mistral, Qwen2, SmolLM), as llama.cpp keeps
// one per architecture: every tensor of a decoder block with its Hugging Face and GGUF
// names, its role, the input it reads, its shape under a config, whether the config has
// it, and where LlamaLayer holds it. The loader, named_tensors (and with it the savers,
// export and the studio's layer tree), calibration's linear groups, compression's shapes,
// the resource estimate and the streamed writer's resume all read names and shapes here.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model/llama_model.h"

namespace mcw {

enum class BlockRole {
  AttnNorm,
  Q,
  K,
  V,
  QBias,
  KBias,
  VBias,
  O,
  OBias,
  FfnNorm,
  Gate,
  Up,
  Down,
  DownBias,
  AttnNormBias,  // GPT-2's LayerNorm biases and up_proj bias
  FfnNormBias,
  UpBias
};

// A dimension of a block tensor of `layer` under a config (blocks can differ in their
// attention and MLP widths: LlamaConfig::block_shapes).
enum class Width { One, Model, Q, KV, Hidden };
int64_t width(const LlamaConfig& c, Width w, int64_t layer);

struct BlockTensor {
  BlockRole role;
  const char* hf;    // after "model.layers.N.": "self_attn.q_proj.weight"
  const char* gguf;  // after "blk.N.": "attn_q.weight"
  Tensor LlamaLayer::*member;
  Width rows, cols;  // cols One: a vector [rows]
  // Linears: the block input they read (the linears reading one input form one group, in
  // the order the block runs them); 0 for norms and biases.
  uint8_t input;
  // q/k weights and biases: rows in Meta's interleaved rotary order in GGUF and llama2.c
  // (llama architecture), in heads of head_dim.
  bool rotary;
  bool (*present)(const LlamaConfig& c);

  bool linear() const { return input != 0; }
};

// The forward pass's name for a block linear's role (llama_forward's hook, the backward's
// LinearGradFn); Q for a role that is no linear.
LlamaLinear block_linear(BlockRole role);
// The weight llama_forward runs for `which` of `layer` (the head for LlamaLinear::Head).
const Tensor& linear_weight(const LlamaModel& m, int64_t layer, LlamaLinear which);

// Every block tensor, in the order named_tensors() lists them.
const std::vector<BlockTensor>& llama_block_tensors();
const BlockTensor& block_tensor(BlockRole role);
Shape block_tensor_shape(const LlamaConfig& c, const BlockTensor& t, int64_t layer);
std::string block_tensor_name(int64_t layer, const BlockTensor& t);  // the HF name
// "model.layers.3.mlp.up_proj.weight" with prefix "model.layers." -> 3 and
// "mlp.up_proj.weight"; false for a name that is not prefix, layer, '.', rest.
bool split_block_name(std::string_view name, std::string_view prefix, int64_t& layer,
                      std::string_view& rest);
// The row of an HF block tensor name ("model.layers.3.mlp.up_proj.weight") and its layer;
// null for any other name.
const BlockTensor* find_block_tensor(std::string_view hf_name, int64_t* layer = nullptr);

// Phi-3 keeps q/k/v in one qkv_proj and gate/up in one gate_up_proj (GGUF: attn_qkv and
// ffn_up), rows in that order. MCW works on the parts: the loader reads each as a view of
// its rows of the fused matrix, and the HF writers put them back together where the config
// is written as Phi-3's (LlamaConfig::fused_projections).
struct FusedTensor {
  const char* hf;    // after "model.layers.N.": "self_attn.qkv_proj.weight"
  const char* gguf;  // after "blk.N.": "attn_qkv.weight"
  std::vector<BlockRole> parts;  // in row order
};
const std::vector<FusedTensor>& phi3_fused_tensors();
struct FusedPart {
  const FusedTensor* fused;
  int64_t rows, first;  // the fused matrix's rows, the part's first row in it
};
// Where `role` sits in its fused matrix under `c`; nothing for a role that is not fused.
std::optional<FusedPart> fused_part(const LlamaConfig& c, BlockRole role);
std::string fused_tensor_name(int64_t layer, const FusedTensor& f);  // the HF name
// The fused matrix an HF name ("model.layers.3.self_attn.qkv_proj.weight") is, and its layer.
const FusedTensor* find_fused_tensor(std::string_view hf_name, int64_t* layer = nullptr);

// The linear inputs of a block in the order it runs them (ActInt8 bits).
inline constexpr uint8_t kBlockInputs[] = {kActInt8Qkv, kActInt8O, kActInt8GateUp, kActInt8Down};

}  // namespace mcw
