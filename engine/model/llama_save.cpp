#include "engine/model/llama_save.h"

#include <filesystem>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/gguf.h"
#include "engine/io/llama2c.h"
#include "engine/io/safetensors.h"

namespace mcw {

// The ActInt8 mask of every layer, or an empty array when no layer quantises activations.
static std::vector<uint8_t> act_int8_masks(const LlamaModel& model) {
  std::vector<uint8_t> masks;
  bool any = false;
  for (const LlamaLayer& L : model.layers) masks.push_back(L.act_int8), any |= L.act_int8 != 0;
  return any ? masks : std::vector<uint8_t>{};
}

std::vector<Tensor> hf_zero_biases(const LlamaConfig& c, int64_t layer) {
  // attention_bias / mlp_bias make transformers expect every bias of the group: the ones
  // this model does not have are written as zeros (the same function).
  std::vector<Tensor> ts;
  auto zeros = [&](const std::string& name, int64_t n) {
    ts.push_back(Tensor::zeros(DType::F32, {n}, name));
  };
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  if (c.o_bias && !c.qkv_bias) {
    zeros(p + "self_attn.q_proj.bias", c.q_dim());
    zeros(p + "self_attn.k_proj.bias", c.kv_dim());
    zeros(p + "self_attn.v_proj.bias", c.kv_dim());
  }
  if (c.qkv_bias && !c.o_bias && c.hf_model_type() != "qwen2") zeros(p + "self_attn.o_proj.bias", c.dim);
  if (c.down_bias) {
    zeros(p + "mlp.gate_proj.bias", c.hidden_dim);
    zeros(p + "mlp.up_proj.bias", c.hidden_dim);
  }
  return ts;
}

void save_llama_hf(const LlamaModel& model, const std::string& dir, const TokenizerFiles& tok) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir, "cannot create directory: " + ec.message());
  const LlamaConfig& c = model.cfg;
  std::vector<Tensor> ts;
  for (auto& [name, t] : model.named_tensors()) {
    Tensor copy = *t;
    copy.set_name(name);
    ts.push_back(std::move(copy));
  }
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (Tensor& z : hf_zero_biases(c, l)) ts.push_back(std::move(z));
  write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});
  save_llama_hf_config(model, dir, tok);
}

void save_llama_hf_config(const LlamaModel& model, const std::string& dir, const TokenizerFiles& tok) {
  const LlamaConfig& c = model.cfg;
  nlohmann::ordered_json config = c.to_hf_config();
  // MCW's own key: which linear inputs run through per-token int8 (W8A8), per layer.
  if (const auto masks = act_int8_masks(model); !masks.empty()) config["mcw_activation_int8"] = masks;
  write_file_atomically(dir + "/config.json", config.dump(2) + "\n");
  if (!tok.tokenizer_json.empty()) write_file_atomically(dir + "/tokenizer.json", tok.tokenizer_json);
  if (tok.byte_vocab)
    write_file_atomically(dir + "/mcw_tokenizer.json",
               nlohmann::json{{"type", "byte"}, {"bos", tok.byte_bos}, {"eos", tok.byte_eos}}.dump(2) + "\n");
}


void save_llama_gguf(const LlamaModel& model, const std::string& path, DType dtype) {
  const LlamaConfig& c = model.cfg;
  if (c.rope_scaling.enabled)
    throw Error(path, "GGUF export of llama3 rope scaling is not supported yet");
  std::vector<GGUFKeyValue> kv;
  auto u32 = [&](const std::string& k, int64_t v) { kv.push_back({k, uint32_t(v)}); };
  auto f32 = [&](const std::string& k, double v) { kv.push_back({k, float(v)}); };
  kv.push_back({"general.architecture", std::string("llama")});
  kv.push_back({"general.name", std::string("mcw-export")});
  u32("llama.context_length", c.max_seq_len);
  u32("llama.embedding_length", c.dim);
  u32("llama.feed_forward_length", c.hidden_dim);
  u32("llama.block_count", c.n_layers);
  u32("llama.attention.head_count", c.n_heads);
  u32("llama.attention.head_count_kv", c.n_kv_heads);
  u32("llama.attention.key_length", c.head_dim);
  u32("llama.attention.value_length", c.head_dim);
  u32("llama.vocab_size", c.vocab_size);
  u32("llama.rope.dimension_count", c.head_dim);
  f32("llama.rope.freq_base", c.rope_theta);
  f32("llama.attention.layer_norm_rms_epsilon", c.rms_eps);
  if (c.sliding_window > 0) u32("llama.attention.sliding_window", c.sliding_window);
  if (c.qkv_bias) throw Error(path, "GGUF export of q/k/v biases (qwen2) is not supported yet");
  // llama.cpp runs without activation quantisation; the key lets MCW reproduce W8A8.
  if (const auto masks = act_int8_masks(model); !masks.empty())
    kv.push_back({"mcw.activation_int8", GGUFValue::array(masks)});

  std::vector<Tensor> ts;
  ts.push_back(gguf_tensor_from_f32(model.tok_embd, "token_embd.weight", dtype));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& L = model.layers[size_t(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    ts.push_back(gguf_tensor_from_f32(L.attn_norm, p + "attn_norm.weight", DType::F32));
    ts.push_back(gguf_tensor_from_f32(permute_rotary_rows(L.wq, c.n_heads, c.head_dim, true), p + "attn_q.weight", dtype));
    ts.push_back(gguf_tensor_from_f32(permute_rotary_rows(L.wk, c.n_kv_heads, c.head_dim, true), p + "attn_k.weight", dtype));
    ts.push_back(gguf_tensor_from_f32(L.wv, p + "attn_v.weight", dtype));
    ts.push_back(gguf_tensor_from_f32(L.wo, p + "attn_output.weight", dtype));
    // llama.cpp's llama architecture loads these optional biases (structured pruning).
    if (c.o_bias) ts.push_back(gguf_tensor_from_f32(L.bo, p + "attn_output.bias", DType::F32));
    ts.push_back(gguf_tensor_from_f32(L.ffn_norm, p + "ffn_norm.weight", DType::F32));
    ts.push_back(gguf_tensor_from_f32(L.w_gate, p + "ffn_gate.weight", dtype));
    ts.push_back(gguf_tensor_from_f32(L.w_up, p + "ffn_up.weight", dtype));
    ts.push_back(gguf_tensor_from_f32(L.w_down, p + "ffn_down.weight", dtype));
    if (c.down_bias) ts.push_back(gguf_tensor_from_f32(L.b_down, p + "ffn_down.bias", DType::F32));
  }
  ts.push_back(gguf_tensor_from_f32(model.out_norm, "output_norm.weight", DType::F32));
  if (!c.tie_embeddings) ts.push_back(gguf_tensor_from_f32(model.output, "output.weight", dtype));
  write_gguf(path, kv, ts);
}

void save_llama_llama2c(const LlamaModel& model, const std::string& path) {
  const LlamaConfig& c = model.cfg;
  if (c.qkv_bias) throw Error(path, "llama2.c checkpoints cannot hold q/k/v biases");
  if (c.head_dim * c.n_heads != c.dim)
    throw Error(path, "llama2.c checkpoints need head_dim = dim / heads");
  std::vector<Tensor> ts;
  auto add = [&](const Tensor& t, const std::string& name) { ts.push_back(gguf_tensor_from_f32(t, name, DType::F32)); };
  add(model.tok_embd, "token_embd.weight");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& L = model.layers[size_t(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    add(L.attn_norm, p + "attn_norm.weight");
    add(permute_rotary_rows(L.wq, c.n_heads, c.head_dim, true), p + "attn_q.weight");
    add(permute_rotary_rows(L.wk, c.n_kv_heads, c.head_dim, true), p + "attn_k.weight");
    add(L.wv, p + "attn_v.weight");
    add(L.wo, p + "attn_output.weight");
    add(L.ffn_norm, p + "ffn_norm.weight");
    add(L.w_gate, p + "ffn_gate.weight");
    add(L.w_down, p + "ffn_down.weight");
    add(L.w_up, p + "ffn_up.weight");
  }
  add(model.out_norm, "output_norm.weight");
  if (!c.tie_embeddings) add(model.output, "output.weight");
  write_llama2c(path, {int(c.dim), int(c.hidden_dim), int(c.n_layers), int(c.n_heads), int(c.n_kv_heads),
                       int(c.vocab_size), int(c.max_seq_len), c.tie_embeddings}, ts);
}

}  // namespace mcw
