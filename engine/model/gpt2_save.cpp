#include "engine/model/gpt2_save.h"

#include <filesystem>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/gguf.h"
#include "engine/io/safetensors.h"

namespace mcw {

namespace {

Tensor transposed(const Tensor& t, const std::string& name) {  // [r, c] -> [c, r]
  const int64_t r = t.dim(0), c = t.dim(1);
  Tensor out = Tensor::zeros(DType::F32, {c, r}, name);
  const float* src = t.as<float>();
  float* dst = out.mutable_as<float>();
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) dst[j * r + i] = src[i * c + j];
  return out;
}

bool is_conv1d(const std::string& name) {
  auto ends = [&](const char* s) {
    const std::string suffix(s);
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends("attn.c_attn.weight") || ends("attn.c_proj.weight") || ends("mlp.c_fc.weight") ||
         ends("mlp.c_proj.weight");
}

}  // namespace

void save_gpt2_hf(const Gpt2Model& model, const std::string& dir, const Gpt2HfOptions& opt) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir, "cannot create directory: " + ec.message());
  std::vector<Tensor> ts;
  for (auto& [name, t] : model.named_tensors()) {
    const std::string full =
        name == "lm_head.weight" || !opt.transformer_prefix ? name : "transformer." + name;
    if (is_conv1d(name)) {
      ts.push_back(transposed(*t, full));
    } else {
      Tensor copy = *t;
      copy.set_name(full);
      ts.push_back(std::move(copy));
    }
  }
  write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});
  write_file_atomically(dir + "/config.json", model.cfg.to_hf_config().dump(2) + "\n");
  if (!opt.tokenizer_json.empty()) write_file_atomically(dir + "/tokenizer.json", opt.tokenizer_json);
}

void save_gpt2_gguf(const Gpt2Model& model, const std::string& path, DType dtype) {
  const Gpt2Config& c = model.cfg;
  if (c.activation != Gpt2Activation::GeluTanh)
    throw Error(path,
                "GGUF's gpt2 architecture has the tanh GELU only; this model uses the exact one");
  if (!c.scale_attn_weights)
    throw Error(path, "GGUF's gpt2 architecture always scales attention scores");
  std::vector<GGUFKeyValue> kv;
  auto u32 = [&](const std::string& k, int64_t v) { kv.push_back({k, uint32_t(v)}); };
  kv.push_back({"general.architecture", std::string("gpt2")});
  kv.push_back({"general.name", std::string("mcw-export")});
  u32("gpt2.context_length", c.n_positions);
  u32("gpt2.embedding_length", c.dim);
  u32("gpt2.feed_forward_length", c.hidden_dim);
  u32("gpt2.block_count", c.n_layers);
  u32("gpt2.attention.head_count", c.n_heads);
  kv.push_back({"gpt2.attention.layer_norm_epsilon", float(c.ln_eps)});

  std::vector<Tensor> ts;
  auto weight = [&](const Tensor& t, const std::string& name) {
    ts.push_back(gguf_tensor_from_f32(t, name, dtype));
  };
  auto f32 = [&](const Tensor& t, const std::string& name) {
    ts.push_back(gguf_tensor_from_f32(t, name, DType::F32));
  };
  weight(model.tok_embd, "token_embd.weight");
  f32(model.pos_embd, "position_embd.weight");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const Gpt2Layer& L = model.layers[size_t(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    f32(L.ln1_w, p + "attn_norm.weight");
    f32(L.ln1_b, p + "attn_norm.bias");
    weight(L.w_qkv, p + "attn_qkv.weight");
    f32(L.b_qkv, p + "attn_qkv.bias");
    weight(L.w_o, p + "attn_output.weight");
    f32(L.b_o, p + "attn_output.bias");
    f32(L.ln2_w, p + "ffn_norm.weight");
    f32(L.ln2_b, p + "ffn_norm.bias");
    weight(L.w_up, p + "ffn_up.weight");
    f32(L.b_up, p + "ffn_up.bias");
    weight(L.w_down, p + "ffn_down.weight");
    f32(L.b_down, p + "ffn_down.bias");
  }
  f32(model.out_norm_w, "output_norm.weight");
  f32(model.out_norm_b, "output_norm.bias");
  if (!model.output.empty()) weight(model.output, "output.weight");
  write_gguf(path, kv, ts);
}

}  // namespace mcw
