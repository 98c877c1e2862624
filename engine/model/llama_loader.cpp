// Builds a LlamaModel from any ModelFile: maps GGUF/llama2.c names to HF ones, checks
// every shape against the config and undoes the interleaved rotary layout of
// llama-architecture GGUF and llama2.c files. Matrices stay views of the mapped file in
// its dtype (a bf16 8 B model costs page cache, not 32 GB of f32); norms and biases, a
// few vectors per layer, are converted to owned f32.
#include <cstring>
#include <optional>

#include "engine/core/error.h"
#include "engine/model/gpt2_model.h"
#include "engine/model/llama_model.h"
#include "engine/model/llama_tensors.h"
#include "engine/kernels/stored_matmul.h"

namespace mcw {

namespace {

struct Names {  // where each weight lives in a given file format
  bool gguf_style;
  std::string layer(int64_t l, const char* hf, const char* gg) const {
    return gguf_style ? "blk." + std::to_string(l) + "." + gg
                      : "model.layers." + std::to_string(l) + "." + hf;
  }
  std::string top(const char* hf, const char* gg) const { return gguf_style ? gg : hf; }
};

class Loader {
 public:
  explicit Loader(const ModelFile& m) : m_(m) {}

  const std::string& path() const { return m_.path; }

  // A vector (norm, bias) as owned f32, or throws naming it; `optional` returns an empty one.
  Tensor get(const std::string& name, const Shape& want, bool optional = false) const {
    const Tensor* t = find(name, want, optional);
    if (!t) return {};
    Tensor out = Tensor::zeros(DType::F32, want, name);
    t->to_f32(out.mutable_as<float>(), 0, size_t(t->numel()));
    return out;
  }

  // A matrix as the file stores it (a view sharing the file's mapping).
  Tensor matrix(const std::string& name, const Shape& want) const {
    const Tensor* t = find(name, want, false);
    if (want[1] % dtype_info(t->dtype()).block)
      throw Error(m_.path, "tensor '" + name + "' has rows of " + std::to_string(want[1]) +
                               " values, not whole " + std::string(dtype_name(t->dtype())) + " blocks");
    return *t;
  }

 private:
  const Tensor* find(const std::string& name, const Shape& want, bool optional) const {
    const Tensor* t = m_.find(name);
    if (!t) {
      if (optional) return nullptr;
      throw Error(m_.path, "missing tensor '" + name + "' (the config implies it)");
    }
    if (t->shape() != want)
      throw Error(m_.path, "tensor '" + name + "' has shape " + shape_string(t->shape()) +
                               " but the config implies " + shape_string(want));
    const DType dt = t->dtype();
    if (!stored_matmul_reads(dt))
      throw Error(m_.path, "tensor '" + name + "' has dtype " + std::string(dtype_name(dt)) +
                               ", which is not a weight type");
    return t;
  }

  const ModelFile& m_;
};

// Biases the forward pass has no place for (gate/up, written as zeros beside a down_proj
// bias so that transformers' mlp_bias loads) must be absent or zero.
void check_zero_bias(const Loader& ld, const std::string& name, int64_t n) {
  const Tensor b = ld.get(name, {n}, /*optional=*/true);
  if (b.empty()) return;
  for (int64_t i = 0; i < b.numel(); ++i)
    if (b.as<float>()[i] != 0.0f)
      throw Error(ld.path(), "tensor '" + name + "' is a non-zero bias, which is not supported");
}

}  // namespace

// The per-layer ActInt8 masks of a W8A8 model: config.json "mcw_activation_int8" or GGUF
// "mcw.activation_int8", an array with one integer in 0..15 per layer.
void read_activation_int8(const ModelFile& m, LlamaModel& model) {
  const char* key = m.format == ModelFormat::HFDirectory ? "mcw_activation_int8" : "mcw.activation_int8";
  auto it = m.hparams.find(key);
  if (it == m.hparams.end() || it->is_null()) return;
  const std::string file = m.format == ModelFormat::HFDirectory ? m.path + "/config.json" : m.path;
  if (!it->is_array() || it->size() != model.layers.size())
    throw Error(file, std::string("key '") + key + "' must be an array of one mask per layer (" +
                          std::to_string(model.layers.size()) + ")");
  for (size_t l = 0; l < model.layers.size(); ++l) {
    const auto& v = (*it)[l];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kActInt8All)
      throw Error(file, std::string("key '") + key + "' holds " + v.dump() +
                            " where a mask in 0..15 was expected");
    model.layers[l].act_int8 = uint8_t(v.get<int64_t>());
  }
}

Tensor permute_rotary_rows(const Tensor& w, int64_t n_heads, int64_t head_dim, bool inverse) {
  const int64_t cols = w.ndim() == 2 ? w.dim(1) : 1, half = head_dim / 2;
  // Rows move whole, so any dtype whose rows are whole blocks keeps its bytes.
  const size_t row_bytes = size_t(*dtype_bytes(w.dtype(), uint64_t(cols)));
  Tensor out = Tensor::zeros(w.dtype(), w.shape(), w.name());
  const auto* src = static_cast<const char*>(w.data());
  auto* dst = static_cast<char*>(out.mutable_data());
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t c = 0; c < 2; ++c) {
        const int64_t inter = h * head_dim + 2 * j + c, halves = h * head_dim + c * half + j;
        const int64_t from = inverse ? halves : inter, to = inverse ? inter : halves;
        std::memcpy(dst + size_t(to) * row_bytes, src + size_t(from) * row_bytes, row_bytes);
      }
  return out;
}

LlamaModel load_llama(const ModelFile& m) {
  if (is_gpt2(m)) return load_gpt2(m);  // its own files' table
  LlamaModel model;
  LlamaConfig& c = model.cfg = llama_config_from(m);
  const Names n{m.format != ModelFormat::HFDirectory};
  const bool interleaved = n.gguf_style && m.architecture != "qwen2" && m.architecture != "phi3";
  const Loader ld(m);
  const int64_t D = c.dim;

  model.tok_embd = ld.matrix(n.top("model.embed_tokens.weight", "token_embd.weight"), {c.vocab_size, D});
  model.out_norm = ld.get(n.top("model.norm.weight", "output_norm.weight"), {D});
  if (!c.tie_embeddings) model.output = ld.matrix(n.top("lm_head.weight", "output.weight"), {c.vocab_size, D});
  model.tok_embd.set_name("model.embed_tokens.weight");
  model.out_norm.set_name("model.norm.weight");
  model.output.set_name("lm_head.weight");

  const bool phi3 = c.model_type == "phi3";
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LlamaLayer L;
    for (const BlockTensor& t : llama_block_tensors()) {
      if (!t.present(c)) continue;
      const std::string name = n.layer(l, t.hf, t.gguf);
      const Shape shape = block_tensor_shape(c, t, l);
      const auto f = phi3 ? fused_part(c, t.role) : std::nullopt;
      Tensor v = f                     ? ld.matrix(n.layer(l, f->fused->hf, f->fused->gguf), {f->rows, shape[1]})
                                             .rows(f->first, f->first + shape[0], name)
                 : t.cols == Width::One ? ld.get(name, shape)
                                        : ld.matrix(name, shape);
      if (t.rotary && interleaved) v = permute_rotary_rows(v, shape[0] / c.head_dim, c.head_dim);
      L.*t.member = std::move(v);
    }
    check_zero_bias(ld, n.layer(l, "mlp.gate_proj.bias", "ffn_gate.bias"), c.hidden_dim_of(l));
    check_zero_bias(ld, n.layer(l, "mlp.up_proj.bias", "ffn_up.bias"), c.hidden_dim_of(l));
    model.layers.push_back(std::move(L));
  }
  read_activation_int8(m, model);
  // Give every weight its HF name, whatever file it came from.
  for (auto& [name, t] : model.named_tensors()) t->set_name(name);
  return model;
}

LlamaModel load_llama(const std::string& path) { return load_llama(open_model_file(path)); }

std::vector<std::pair<std::string, Tensor*>> LlamaModel::named_tensors() {
  std::vector<std::pair<std::string, Tensor*>> out;
  out.emplace_back("model.embed_tokens.weight", &tok_embd);
  if (cfg.learned_positions) out.emplace_back("model.embed_positions.weight", &pos_embd);
  for (size_t l = 0; l < layers.size(); ++l)
    for (const BlockTensor& t : llama_block_tensors())
      if (t.present(cfg)) out.emplace_back(block_tensor_name(int64_t(l), t), &(layers[l].*t.member));
  out.emplace_back("model.norm.weight", &out_norm);
  if (cfg.layer_norm()) out.emplace_back("model.norm.bias", &out_norm_b);
  if (!cfg.tie_embeddings) out.emplace_back("lm_head.weight", &output);
  return out;
}

std::vector<std::pair<std::string, const Tensor*>> LlamaModel::named_tensors() const {
  std::vector<std::pair<std::string, const Tensor*>> out;
  for (auto& [name, t] : const_cast<LlamaModel*>(this)->named_tensors()) out.emplace_back(name, t);
  return out;
}

std::vector<std::string> LlamaModel::tensor_names() const {
  std::vector<std::string> out;
  for (auto& [name, t] : named_tensors()) out.push_back(name);
  return out;
}

uint64_t LlamaModel::parameter_count() const {
  uint64_t n = 0;
  for (auto& [name, t] : named_tensors()) n += uint64_t(t->numel());
  return n;
}

}  // namespace mcw
