#include "engine/model/llama_save.h"

#include <cstring>
#include <filesystem>
#include <map>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/gguf.h"  // gguf_tensor_from_f32 for llama2.c
#include "engine/io/llama2c.h"
#include "engine/io/safetensors.h"
#include "engine/model/gpt2_model.h"
#include "engine/model/llama_tensors.h"

namespace mcw {

std::vector<uint8_t> activation_int8_masks(const LlamaModel& model) {
  std::vector<uint8_t> masks;
  bool any = false;
  for (const LlamaLayer& L : model.layers) masks.push_back(L.act_int8), any |= L.act_int8 != 0;
  return any ? masks : std::vector<uint8_t>{};
}

std::vector<Tensor> hf_zero_biases(const LlamaConfig& c, int64_t layer) {
  // attention_bias / mlp_bias make transformers expect every bias of the group: the ones
  // this model does not have are written as zeros (the same function).
  std::vector<Tensor> ts;
  if (c.model_type == "gpt2") return ts;  // GPT-2's file has every bias it reads
  auto zeros = [&](const std::string& name, int64_t n) {
    ts.push_back(Tensor::zeros(DType::F32, {n}, name));
  };
  auto zero = [&](BlockRole role) {
    const BlockTensor& t = block_tensor(role);
    zeros(block_tensor_name(layer, t), width(c, t.rows, layer));
  };
  if (c.o_bias && !c.qkv_bias) zero(BlockRole::QBias), zero(BlockRole::KBias), zero(BlockRole::VBias);
  if (c.qkv_bias && !c.o_bias && c.hf_model_type() != "qwen2") zero(BlockRole::OBias);
  if (c.down_bias) {  // gate/up biases: not in MCW's model at all, always zero
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    zeros(p + "mlp.gate_proj.bias", c.hidden_dim_of(layer));
    zeros(p + "mlp.up_proj.bias", c.hidden_dim_of(layer));
  }
  return ts;
}

Tensor stacked_rows(const std::vector<const Tensor*>& parts, const std::string& name) {
  int64_t rows = 0;
  for (const Tensor* p : parts) {
    if (!p || !parts[0] || p->dtype() == DType::Packed || p->dtype() != parts[0]->dtype() ||
        p->ndim() != parts[0]->ndim() || (p->ndim() == 2 && p->dim(1) != parts[0]->dim(1)))
      throw Error(name, "its parts are not all present as stored tensors of one dtype and width");
    rows += p->dim(0);
  }
  if (parts.size() == 1) {
    Tensor one = *parts[0];
    one.set_name(name);
    return one;
  }
  Tensor out = Tensor::zeros(
      parts[0]->dtype(), parts[0]->ndim() == 2 ? Shape{rows, parts[0]->dim(1)} : Shape{rows}, name);
  auto* dst = static_cast<char*>(out.mutable_data());
  for (const Tensor* p : parts) std::memcpy(dst, p->data(), p->nbytes()), dst += p->nbytes();
  return out;
}

std::vector<Tensor> hf_fused(const LlamaConfig& c, std::vector<Tensor> ts) {
  if (c.model_type == "gpt2") return gpt2_file_tensors(std::move(ts));
  if (!c.fused_projections()) return ts;
  // (layer, fused matrix) -> its parts, by role order
  std::map<std::pair<int64_t, const FusedTensor*>, std::vector<Tensor*>> groups;
  for (Tensor& t : ts) {
    int64_t layer = 0;
    const BlockTensor* row = find_block_tensor(t.name(), &layer);
    const auto f = row ? fused_part(c, row->role) : std::nullopt;
    if (!f) continue;
    auto& parts = groups[{layer, f->fused}];
    parts.resize(f->fused->parts.size());
    for (size_t k = 0; k < parts.size(); ++k)
      if (f->fused->parts[k] == row->role) parts[k] = &t;
  }
  std::map<std::string, Tensor> fused;  // by the name of its first part
  for (auto& [key, parts] : groups) {
    const std::string name = fused_tensor_name(key.first, *key.second);
    const std::vector<const Tensor*> stored(parts.begin(), parts.end());
    if (stored[0] && stored[0]->ndim() != 2) throw Error(name, "its parts are not matrices");
    fused.emplace(stored[0]->name(), stacked_rows(stored, name));
  }
  std::vector<Tensor> out;
  for (Tensor& t : ts) {
    int64_t layer = 0;
    const BlockTensor* row = find_block_tensor(t.name(), &layer);
    if (!row || !fused_part(c, row->role)) out.push_back(std::move(t));
    else if (auto it = fused.find(t.name()); it != fused.end()) out.push_back(std::move(it->second));
  }
  return out;
}

std::vector<Tensor> hf_unfused(const LlamaConfig& c, std::vector<Tensor> ts) {
  if (c.model_type == "gpt2") return gpt2_model_tensors(c, std::move(ts));
  if (!c.fused_projections()) return ts;
  std::vector<Tensor> out;
  for (Tensor& t : ts) {
    int64_t layer = 0;
    const FusedTensor* fused = find_fused_tensor(t.name(), &layer);
    if (!fused) {
      out.push_back(std::move(t));
      continue;
    }
    for (BlockRole role : fused->parts) {
      const BlockTensor& part = block_tensor(role);
      const auto f = fused_part(c, role);
      if (t.ndim() != 2 || t.dim(0) != f->rows)
        throw Error(t.name(), "has shape " + shape_string(t.shape()) + ", not " + std::to_string(f->rows) +
                                  " rows of its parts");
      out.push_back(
          t.rows(f->first, f->first + width(c, part.rows, layer), block_tensor_name(layer, part)));
    }
  }
  return out;
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
  write_safetensors(dir + "/model.safetensors", hf_fused(c, std::move(ts)), {{"format", "pt"}});
  save_llama_hf_config(model, dir, tok);
}

void save_llama_hf_config(const LlamaModel& model, const std::string& dir, const TokenizerFiles& tok) {
  const LlamaConfig& c = model.cfg;
  nlohmann::ordered_json config = c.to_hf_config();
  // The dtype the weights are written in (a streamed writer's bf16 shards, a bf16 source
  // saved as it is), as transformers reads it to pick the model's dtype.
  const DType stored = model.tok_embd.dtype();
  config["torch_dtype"] = stored == DType::BF16 ? "bfloat16" : stored == DType::F16 ? "float16" : "float32";
  // MCW's own key: which linear inputs run through per-token int8 (W8A8), per layer.
  if (const auto masks = activation_int8_masks(model); !masks.empty()) config["mcw_activation_int8"] = masks;
  write_file_atomically(dir + "/config.json", config.dump(2) + "\n");
  if (!tok.tokenizer_json.empty()) write_file_atomically(dir + "/tokenizer.json", tok.tokenizer_json);
  if (tok.byte_vocab)
    write_file_atomically(dir + "/mcw_tokenizer.json",
               nlohmann::json{{"type", "byte"}, {"bos", tok.byte_bos}, {"eos", tok.byte_eos}}.dump(2) + "\n");
}


void save_llama_llama2c(const LlamaModel& model, const std::string& path) {
  const LlamaConfig& c = model.cfg;
  if (c.qkv_bias) throw Error(path, "llama2.c checkpoints cannot hold q/k/v biases");
  if (!c.uniform())
    throw Error(path, "llama2.c checkpoints cannot hold blocks of different widths");
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
