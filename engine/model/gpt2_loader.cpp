// GPT-2's files as the llama decoder's variant: its tensor table (HF names with or without
// the "transformer." prefix and Conv1D [in, out] weights; GGUF's gpt2 names, weights
// already [out, in]), every shape checked against the config in the file's own key names.
#include <string>

#include "engine/core/error.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/gpt2_model.h"

namespace mcw {

bool is_gpt2(const ModelFile& m) {
  return m.architecture == "gpt2" || m.architecture == "GPT2LMHeadModel";
}

LlamaConfig llama_config_of(const Gpt2Config& g) {
  LlamaConfig c;
  c.model_type = "gpt2";
  c.vocab_size = g.vocab_size, c.dim = g.dim, c.hidden_dim = g.hidden_dim;
  c.n_layers = g.n_layers, c.n_heads = c.n_kv_heads = g.n_heads, c.head_dim = g.head_dim();
  c.max_seq_len = g.n_positions;
  c.rms_eps = g.ln_eps;
  c.tie_embeddings = g.tie_embeddings;
  c.qkv_bias = c.o_bias = c.up_bias = c.down_bias = true;
  c.norm = NormKind::Layer;
  c.mlp = g.activation == Gpt2Activation::GeluTanh ? MlpKind::GeluTanh : MlpKind::GeluErf;
  c.learned_positions = true;
  c.scale_attention = g.scale_attn_weights;
  return c;
}

Gpt2Config gpt2_config_of(const LlamaConfig& c) {
  Gpt2Config g;
  g.vocab_size = c.vocab_size, g.dim = c.dim, g.hidden_dim = c.hidden_dim;
  g.n_layers = c.n_layers, g.n_heads = c.n_heads, g.n_positions = c.max_seq_len;
  g.ln_eps = c.rms_eps;
  g.activation = c.mlp == MlpKind::GeluErf ? Gpt2Activation::GeluErf : Gpt2Activation::GeluTanh;
  g.tie_embeddings = c.tie_embeddings;
  g.scale_attn_weights = c.scale_attention;
  return g;
}

namespace {

struct Names {  // where each tensor lives in a given file
  bool gguf;
  std::string prefix;  // HF: "transformer." or ""
  std::string layer(int64_t l, const char* hf, const char* gg) const {
    return gguf ? "blk." + std::to_string(l) + "." + gg
                : prefix + "h." + std::to_string(l) + "." + hf;
  }
  std::string top(const char* hf, const char* gg) const { return gguf ? gg : prefix + hf; }
};

// HF checkpoints name weights "transformer.h.0..." (GPT2LMHeadModel) or "h.0..."
// (GPT2Model, as the original gpt2 repository stores them).
std::string hf_prefix(const ModelFile& m) {
  if (m.find("transformer.wte.weight")) return "transformer.";
  if (m.find("wte.weight")) return "";
  throw Error(m.path,
              "missing tensor 'transformer.wte.weight' (or 'wte.weight'): not a GPT-2 checkpoint");
}

class Loader {
 public:
  explicit Loader(const ModelFile& m) : m_(m) {}

  // The named tensor checked against `want` ([out, in]; `conv1d`: stored [in, out]), or
  // throws naming it and the config keys that imply the shape.
  Tensor get(const std::string& name, const Shape& want, const std::string& keys,
             bool conv1d = false) const {
    const Tensor* t = m_.find(name);
    if (!t)
      throw Error(m_.path, "missing tensor '" + name + "' (the config implies it: " + keys + ")");
    const Shape stored = conv1d ? Shape{want[1], want[0]} : want;
    if (t->shape() != stored)
      throw Error(m_.path, "tensor '" + name + "' has shape " + shape_string(t->shape()) +
                               " but the config implies " + shape_string(stored) + " (" + keys + ")");
    const DType dt = t->dtype();
    if (!stored_matmul_reads(dt))
      throw Error(m_.path, "tensor '" + name + "' has dtype " + std::string(dtype_name(dt)) +
                               ", which is not a weight type");
    if (want.size() == 2 && want[1] % dtype_info(dt).block)
      throw Error(m_.path, "tensor '" + name + "' has rows of " + std::to_string(want[1]) +
                               " values, not whole " + std::string(dtype_name(dt)) + " blocks");
    if (want.size() == 1) return t->f32_copy();  // norms and biases: owned f32
    if (conv1d && (is_block_type(dt) || dtype_info(dt).block_bytes > 4))
      throw Error(m_.path, "tensor '" + name + "' has dtype " + std::string(dtype_name(dt)) +
                               ", which a Conv1D weight cannot have");
    return *t;  // a Conv1D weight as stored: split_parts reads it transposed
  }

 private:
  const ModelFile& m_;
};

// A file tensor's parts into the layer: matrices as views, vectors as owned f32 (norms and
// biases are written in place, by SmoothQuant's fold for one).
void split_parts(const LlamaConfig& c, const Gpt2FileTensor& f, const Tensor& t, bool conv1d,
                 int64_t layer, LlamaLayer& L) {
  std::vector<Tensor> parts = gpt2_file_tensor_parts(c, f, t, conv1d, layer);
  for (size_t k = 0; k < parts.size(); ++k)
    L.*block_tensor(f.parts[k]).member =
        parts[k].ndim() == 1 ? parts[k].f32_copy() : std::move(parts[k]);
}

}  // namespace

LlamaModel load_gpt2(const ModelFile& m) {
  LlamaModel model;
  const LlamaConfig& c = model.cfg = llama_config_of(gpt2_config_from(m));
  const bool gguf = m.format == ModelFormat::GGUF;
  const Names n{gguf, gguf ? "" : hf_prefix(m)};
  const Loader ld(m);
  const int64_t D = c.dim, V = c.vocab_size;
  const std::string kd = gguf ? "gpt2.embedding_length" : "n_embd";
  const std::string kdf = kd + ", " + (gguf ? "gpt2.feed_forward_length" : "n_inner");
  const std::string kv = std::string(gguf ? "vocab size" : "vocab_size") + ", " + kd;
  const std::string kp = std::string(gguf ? "gpt2.context_length" : "n_positions") + ", " + kd;

  model.tok_embd = ld.get(n.top("wte.weight", "token_embd.weight"), {V, D}, kv);
  model.pos_embd = ld.get(n.top("wpe.weight", "position_embd.weight"), {c.max_seq_len, D}, kp);
  model.out_norm = ld.get(n.top("ln_f.weight", "output_norm.weight"), {D}, kd);
  model.out_norm_b = ld.get(n.top("ln_f.bias", "output_norm.bias"), {D}, kd);
  if (!c.tie_embeddings)
    model.output = ld.get(gguf ? "output.weight" : "lm_head.weight", {V, D}, kv);

  const std::string kl = std::string(gguf ? "gpt2.block_count" : "n_layer") + " = " +
                         std::to_string(c.n_layers) + ", " + kd;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LlamaLayer L;
    for (const Gpt2FileTensor& f : gpt2_block_file_tensors()) {
      const std::string name = n.layer(l, f.hf, f.gguf);
      // A missing layer names the layer count; a wrong shape the sizes.
      if (!m.find(name))
        throw Error(m.path, "missing tensor '" + name + "' (the config implies it: " + kl + ")");
      const int64_t rows = gpt2_file_tensor_rows(c, f);
      const BlockTensor& first = block_tensor(f.parts[0]);
      const bool hidden = first.rows == Width::Hidden || first.cols == Width::Hidden;
      const Shape want =
          first.cols == Width::One ? Shape{rows} : Shape{rows, width(c, first.cols, 0)};
      const bool conv1d = f.conv1d && !gguf;
      split_parts(c, f, ld.get(name, want, hidden ? kdf : kd, conv1d), conv1d, l, L);
    }
    model.layers.push_back(std::move(L));
  }
  // A layer beyond the config is as much a disagreement as a missing one.
  const std::string extra = n.layer(c.n_layers, "ln_1.weight", "attn_norm.weight");
  if (m.find(extra))
    throw Error(m.path, "tensor '" + extra + "' is beyond the config's " + kl.substr(0, kl.find(',')));
  read_activation_int8(m, model);
  for (auto& [name, t] : model.named_tensors()) t->set_name(name);
  return model;
}

LlamaModel load_gpt2(const std::string& path) { return load_gpt2(open_model_file(path)); }

LlamaModel llama_from_gpt2(const Gpt2Model& g) {
  LlamaModel model;
  const LlamaConfig& c = model.cfg = llama_config_of(g.cfg);
  model.tok_embd = g.tok_embd, model.pos_embd = g.pos_embd;
  model.out_norm = g.out_norm_w, model.out_norm_b = g.out_norm_b, model.output = g.output;
  const auto& table = gpt2_block_file_tensors();
  for (size_t l = 0; l < g.layers.size(); ++l) {
    Gpt2Layer G = g.layers[l];  // tensor copies share their bytes
    const std::array<Tensor*, 12> file_order = G.in_file_order();
    LlamaLayer L;
    for (size_t k = 0; k < table.size(); ++k)
      split_parts(c, table[k], *file_order[k], false, int64_t(l), L);
    model.layers.push_back(std::move(L));
  }
  for (auto& [name, t] : model.named_tensors()) t->set_name(name);
  return model;
}

// Gpt2Model's names are its HF files' (without the "transformer." prefix).
std::vector<std::pair<std::string, Tensor*>> Gpt2Model::named_tensors() {
  std::vector<std::pair<std::string, Tensor*>> out;
  out.emplace_back("wte.weight", &tok_embd);
  out.emplace_back("wpe.weight", &pos_embd);
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    const std::array<Tensor*, 12> file_order = layers[l].in_file_order();
    const auto& table = gpt2_block_file_tensors();
    for (size_t k = 0; k < table.size(); ++k) out.emplace_back(p + table[k].hf, file_order[k]);
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
