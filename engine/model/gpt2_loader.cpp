// Builds a Gpt2Model from an HF directory (names with or without the "transformer."
// prefix, Conv1D [in, out] weights) or a GGUF file (llama.cpp's gpt2 names, weights
// already [out, in]); checks every shape against the config and converts to f32.
#include <string>

#include "engine/core/error.h"
#include "engine/model/gpt2_model.h"
#include "engine/kernels/stored_matmul.h"

namespace mcw {

namespace {

struct Names {  // where each weight lives in a given file
  bool gguf;
  std::string prefix;  // HF: "transformer." or ""
  std::string layer(int64_t l, const char* hf, const char* gg) const {
    return gguf ? "blk." + std::to_string(l) + "." + gg
                : prefix + "h." + std::to_string(l) + "." + hf;
  }
  std::string top(const char* hf, const char* gg) const { return gguf ? gg : prefix + hf; }
};

class Loader {
 public:
  explicit Loader(const ModelFile& m) : m_(m) {}

  // The named tensor as owned f32 of shape `want`, or throws naming it and the config keys
  // (`keys`) that imply the shape. `conv1d` reads an HF Conv1D weight, stored [in, out],
  // and returns it transposed to [out, in] = `want`.
  Tensor get(const std::string& name, const Shape& want, const char* keys,
             bool conv1d = false) const {
    const Tensor* t = m_.find(name);
    if (!t)
      throw Error(m_.path, "missing tensor '" + name + "' (the config implies it: " + keys + ")");
    const Shape stored = conv1d ? Shape{want[1], want[0]} : want;
    if (t->shape() != stored)
      throw Error(m_.path, "tensor '" + name + "' has shape " + shape_string(t->shape()) +
                               " but the config implies " + shape_string(stored) + " (" + keys +
                               ")");
    const DType dt = t->dtype();
    if (!stored_matmul_reads(dt))
      throw Error(m_.path, "tensor '" + name + "' has dtype " + std::string(dtype_name(dt)) +
                               ", which is not a weight type");
    Tensor raw = Tensor::zeros(DType::F32, stored, name);
    t->to_f32(raw.mutable_as<float>(), 0, size_t(t->numel()));
    if (!conv1d) return raw;
    Tensor out = Tensor::zeros(DType::F32, want, name);
    const int64_t rows = want[0], cols = want[1];  // out, in
    const float* src = raw.as<float>();
    float* dst = out.mutable_as<float>();
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t o = 0; o < rows; ++o) dst[o * cols + i] = src[i * rows + o];
    return out;
  }

 private:
  const ModelFile& m_;
};

// HF checkpoints name weights "transformer.h.0..." (GPT2LMHeadModel) or "h.0..."
// (GPT2Model, as the original gpt2 repository stores them).
std::string hf_prefix(const ModelFile& m) {
  if (m.find("transformer.wte.weight")) return "transformer.";
  if (m.find("wte.weight")) return "";
  throw Error(m.path,
              "missing tensor 'transformer.wte.weight' (or 'wte.weight'): not a GPT-2 checkpoint");
}

}  // namespace

Gpt2Model load_gpt2(const ModelFile& m) {
  Gpt2Model model;
  const Gpt2Config& c = model.cfg = gpt2_config_from(m);
  const bool gguf = m.format == ModelFormat::GGUF;
  const Names n{gguf, gguf ? "" : hf_prefix(m)};
  const bool conv = !gguf;
  const Loader ld(m);
  const int64_t D = c.dim, F = c.hidden_dim, V = c.vocab_size;
  const char* kd = gguf ? "gpt2.embedding_length" : "n_embd";
  const std::string kdf = std::string(kd) + ", " + (gguf ? "gpt2.feed_forward_length" : "n_inner");
  const std::string kv = std::string(gguf ? "vocab size" : "vocab_size") + ", " + kd;
  const std::string kp = std::string(gguf ? "gpt2.context_length" : "n_positions") + ", " + kd;

  model.tok_embd = ld.get(n.top("wte.weight", "token_embd.weight"), {V, D}, kv.c_str());
  model.pos_embd =
      ld.get(n.top("wpe.weight", "position_embd.weight"), {c.n_positions, D}, kp.c_str());
  model.out_norm_w = ld.get(n.top("ln_f.weight", "output_norm.weight"), {D}, kd);
  model.out_norm_b = ld.get(n.top("ln_f.bias", "output_norm.bias"), {D}, kd);
  if (!c.tie_embeddings)
    model.output = ld.get(gguf ? "output.weight" : "lm_head.weight", {V, D}, kv.c_str());

  const std::string kl = std::string(gguf ? "gpt2.block_count" : "n_layer") + " = " +
                         std::to_string(c.n_layers) + ", " + kd;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    Gpt2Layer L;
    // A missing layer names the layer count; a wrong shape the sizes.
    auto get = [&](const char* hf, const char* gg, const Shape& want, const std::string& keys,
                   bool conv1d = false) {
      const std::string name = n.layer(l, hf, gg);
      if (!m.find(name))
        throw Error(m.path, "missing tensor '" + name + "' (the config implies it: " + kl + ")");
      return ld.get(name, want, keys.c_str(), conv1d);
    };
    L.ln1_w = get("ln_1.weight", "attn_norm.weight", {D}, kd);
    L.ln1_b = get("ln_1.bias", "attn_norm.bias", {D}, kd);
    L.w_qkv = get("attn.c_attn.weight", "attn_qkv.weight", {3 * D, D}, kd, conv);
    L.b_qkv = get("attn.c_attn.bias", "attn_qkv.bias", {3 * D}, kd);
    L.w_o = get("attn.c_proj.weight", "attn_output.weight", {D, D}, kd, conv);
    L.b_o = get("attn.c_proj.bias", "attn_output.bias", {D}, kd);
    L.ln2_w = get("ln_2.weight", "ffn_norm.weight", {D}, kd);
    L.ln2_b = get("ln_2.bias", "ffn_norm.bias", {D}, kd);
    L.w_up = get("mlp.c_fc.weight", "ffn_up.weight", {F, D}, kdf, conv);
    L.b_up = get("mlp.c_fc.bias", "ffn_up.bias", {F}, kdf);
    L.w_down = get("mlp.c_proj.weight", "ffn_down.weight", {D, F}, kdf, conv);
    L.b_down = get("mlp.c_proj.bias", "ffn_down.bias", {D}, kd);
    model.layers.push_back(std::move(L));
  }
  // A layer beyond the config is as much a disagreement as a missing one.
  const std::string extra = n.layer(c.n_layers, "ln_1.weight", "attn_norm.weight");
  if (m.find(extra))
    throw Error(m.path,
                "tensor '" + extra + "' is beyond the config's " + kl.substr(0, kl.find(',')));
  for (auto& [name, t] : model.named_tensors()) t->set_name(name);
  return model;
}

Gpt2Model load_gpt2(const std::string& path) { return load_gpt2(open_model_file(path)); }

std::vector<std::pair<std::string, Tensor*>> Gpt2Model::named_tensors() {
  std::vector<std::pair<std::string, Tensor*>> out;
  out.emplace_back("wte.weight", &tok_embd);
  out.emplace_back("wpe.weight", &pos_embd);
  for (size_t l = 0; l < layers.size(); ++l) {
    Gpt2Layer& L = layers[l];
    const std::string p = "h." + std::to_string(l) + ".";
    out.emplace_back(p + "ln_1.weight", &L.ln1_w);
    out.emplace_back(p + "ln_1.bias", &L.ln1_b);
    out.emplace_back(p + "attn.c_attn.weight", &L.w_qkv);
    out.emplace_back(p + "attn.c_attn.bias", &L.b_qkv);
    out.emplace_back(p + "attn.c_proj.weight", &L.w_o);
    out.emplace_back(p + "attn.c_proj.bias", &L.b_o);
    out.emplace_back(p + "ln_2.weight", &L.ln2_w);
    out.emplace_back(p + "ln_2.bias", &L.ln2_b);
    out.emplace_back(p + "mlp.c_fc.weight", &L.w_up);
    out.emplace_back(p + "mlp.c_fc.bias", &L.b_up);
    out.emplace_back(p + "mlp.c_proj.weight", &L.w_down);
    out.emplace_back(p + "mlp.c_proj.bias", &L.b_down);
  }
  out.emplace_back("ln_f.weight", &out_norm_w);
  out.emplace_back("ln_f.bias", &out_norm_b);
  if (!output.empty()) out.emplace_back("lm_head.weight", &output);
  return out;
}

std::vector<std::pair<std::string, const Tensor*>> Gpt2Model::named_tensors() const {
  std::vector<std::pair<std::string, const Tensor*>> out;
  for (auto& [name, t] : const_cast<Gpt2Model*>(this)->named_tensors()) out.emplace_back(name, t);
  return out;
}

uint64_t Gpt2Model::parameter_count() const {
  uint64_t n = 0;
  for (auto& [name, t] : named_tensors()) n += uint64_t(t->numel());
  return n;
}

}  // namespace mcw
