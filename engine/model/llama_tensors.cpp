#include "engine/model/llama_tensors.h"

#include <charconv>

#include "engine/core/error.h"

namespace mcw {

namespace {

bool always(const LlamaConfig&) { return true; }
bool qkv_bias(const LlamaConfig& c) { return c.qkv_bias; }
bool o_bias(const LlamaConfig& c) { return c.o_bias; }
bool down_bias(const LlamaConfig& c) { return c.down_bias; }
bool up_bias(const LlamaConfig& c) { return c.up_bias; }
bool gated(const LlamaConfig& c) { return c.gated_mlp(); }
bool layer_norm(const LlamaConfig& c) { return c.layer_norm(); }

constexpr const char* kBlockPrefix = "model.layers.";

}  // namespace

int64_t width(const LlamaConfig& c, Width w, int64_t layer) {
  switch (w) {
    case Width::One:
      return 1;
    case Width::Model:
      return c.dim;
    case Width::Q:
      return c.q_dim(layer);
    case Width::KV:
      return c.kv_dim(layer);
    case Width::Hidden:
      return c.hidden_dim_of(layer);
  }
  return 0;
}

const std::vector<BlockTensor>& llama_block_tensors() {
  using R = BlockRole;
  using W = Width;
  using L = LlamaLayer;
  static const std::vector<BlockTensor> table = {
      {R::AttnNorm, "input_layernorm.weight", "attn_norm.weight", &L::attn_norm, W::Model, W::One,
       0, false, always},
      {R::AttnNormBias, "input_layernorm.bias", "attn_norm.bias", &L::attn_norm_b, W::Model,
       W::One, 0, false, layer_norm},
      {R::Q, "self_attn.q_proj.weight", "attn_q.weight", &L::wq, W::Q, W::Model, kActInt8Qkv, true,
       always},
      {R::K, "self_attn.k_proj.weight", "attn_k.weight", &L::wk, W::KV, W::Model, kActInt8Qkv, true,
       always},
      {R::V, "self_attn.v_proj.weight", "attn_v.weight", &L::wv, W::KV, W::Model, kActInt8Qkv,
       false, always},
      {R::QBias, "self_attn.q_proj.bias", "attn_q.bias", &L::bq, W::Q, W::One, 0, true, qkv_bias},
      {R::KBias, "self_attn.k_proj.bias", "attn_k.bias", &L::bk, W::KV, W::One, 0, true, qkv_bias},
      {R::VBias, "self_attn.v_proj.bias", "attn_v.bias", &L::bv, W::KV, W::One, 0, false, qkv_bias},
      {R::O, "self_attn.o_proj.weight", "attn_output.weight", &L::wo, W::Model, W::Q, kActInt8O,
       false, always},
      {R::OBias, "self_attn.o_proj.bias", "attn_output.bias", &L::bo, W::Model, W::One, 0, false,
       o_bias},
      {R::FfnNorm, "post_attention_layernorm.weight", "ffn_norm.weight", &L::ffn_norm, W::Model,
       W::One, 0, false, always},
      {R::FfnNormBias, "post_attention_layernorm.bias", "ffn_norm.bias", &L::ffn_norm_b, W::Model,
       W::One, 0, false, layer_norm},
      {R::Gate, "mlp.gate_proj.weight", "ffn_gate.weight", &L::w_gate, W::Hidden, W::Model,
       kActInt8GateUp, false, gated},
      {R::Up, "mlp.up_proj.weight", "ffn_up.weight", &L::w_up, W::Hidden, W::Model, kActInt8GateUp,
       false, always},
      {R::UpBias, "mlp.up_proj.bias", "ffn_up.bias", &L::b_up, W::Hidden, W::One, 0, false,
       up_bias},
      {R::Down, "mlp.down_proj.weight", "ffn_down.weight", &L::w_down, W::Model, W::Hidden,
       kActInt8Down, false, always},
      {R::DownBias, "mlp.down_proj.bias", "ffn_down.bias", &L::b_down, W::Model, W::One, 0, false,
       down_bias},
  };
  return table;
}

const BlockTensor& block_tensor(BlockRole role) {
  for (const BlockTensor& t : llama_block_tensors())
    if (t.role == role) return t;
  throw Error("llama tensor table", "no row for a role");  // every role has one
}

Shape block_tensor_shape(const LlamaConfig& c, const BlockTensor& t, int64_t layer) {
  if (t.cols == Width::One) return {width(c, t.rows, layer)};
  return {width(c, t.rows, layer), width(c, t.cols, layer)};
}

std::string block_tensor_name(int64_t layer, const BlockTensor& t) {
  return kBlockPrefix + std::to_string(layer) + "." + t.hf;
}

const std::vector<FusedTensor>& phi3_fused_tensors() {
  using R = BlockRole;
  static const std::vector<FusedTensor> table = {
      {"self_attn.qkv_proj.weight", "attn_qkv.weight", {R::Q, R::K, R::V}},
      {"mlp.gate_up_proj.weight", "ffn_up.weight", {R::Gate, R::Up}},
  };
  return table;
}

std::optional<FusedPart> fused_part(const LlamaConfig& c, BlockRole role) {
  for (const FusedTensor& f : phi3_fused_tensors()) {
    int64_t rows = 0, first = -1;
    for (BlockRole p : f.parts) {
      if (p == role) first = rows;
      rows += width(c, block_tensor(p).rows, 0);  // fused files are uniform (hf_model_type)
    }
    if (first >= 0) return FusedPart{&f, rows, first};
  }
  return std::nullopt;
}

std::string fused_tensor_name(int64_t layer, const FusedTensor& f) {
  return kBlockPrefix + std::to_string(layer) + "." + f.hf;
}

bool split_block_name(std::string_view name, std::string_view prefix, int64_t& layer,
                      std::string_view& rest) {
  if (!name.starts_with(prefix)) return false;
  name.remove_prefix(prefix.size());
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), layer);
  if (ec != std::errc() || layer < 0 || end == name.data() + name.size() || *end != '.') return false;
  rest = std::string_view(end + 1, size_t(name.data() + name.size() - (end + 1)));
  return true;
}

const BlockTensor* find_block_tensor(std::string_view name, int64_t* layer) {
  int64_t l = -1;
  std::string_view rest;
  if (!split_block_name(name, kBlockPrefix, l, rest)) return nullptr;
  for (const BlockTensor& t : llama_block_tensors())
    if (rest == t.hf) {
      if (layer) *layer = l;
      return &t;
    }
  return nullptr;
}

const FusedTensor* find_fused_tensor(std::string_view name, int64_t* layer) {
  int64_t l = -1;
  std::string_view rest;
  if (!split_block_name(name, kBlockPrefix, l, rest)) return nullptr;
  for (const FusedTensor& f : phi3_fused_tensors())
    if (rest == f.hf) {
      if (layer) *layer = l;
      return &f;
    }
  return nullptr;
}

LlamaLinear block_linear(BlockRole role) {
  switch (role) {
    case BlockRole::K: return LlamaLinear::K;
    case BlockRole::V: return LlamaLinear::V;
    case BlockRole::O: return LlamaLinear::O;
    case BlockRole::Gate: return LlamaLinear::Gate;
    case BlockRole::Up: return LlamaLinear::Up;
    case BlockRole::Down: return LlamaLinear::Down;
    default: return LlamaLinear::Q;
  }
}

const Tensor& linear_weight(const LlamaModel& m, int64_t layer, LlamaLinear which) {
  if (which == LlamaLinear::Head) return m.lm_head();
  const LlamaLayer& L = m.layers[size_t(layer)];
  const Tensor* by[] = {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down};
  return *by[int(which)];
}

}  // namespace mcw
