// GPT-2 hyper-parameters from HF config.json or GGUF gpt2.* keys.
#include <string>

#include "engine/core/error.h"
#include "engine/model/config_keys.h"
#include "engine/model/gpt2_model.h"

namespace mcw {

using json = nlohmann::ordered_json;

namespace {

Gpt2Activation activation_from(const std::string& name, const std::string& file) {
  // transformers' names for the tanh approximation, and the exact erf form.
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast")
    return Gpt2Activation::GeluTanh;
  if (name == "gelu") return Gpt2Activation::GeluErf;
  throw Error(file, "key 'activation_function' is '" + name +
                        "', which is not supported (gelu_new, gelu_pytorch_tanh, gelu_fast "
                        "and gelu are)");
}

// transformers' default MLP width; an out-of-range n_embd is left for validate() to name.
int64_t default_hidden(int64_t dim) { return dim > 0 && dim <= (int64_t(1) << 31) ? 4 * dim : dim; }

Gpt2Config from_hf(const ModelFile& m) {
  const std::string file = m.path + "/config.json";
  const ConfigKeys k{m.hparams, file, ""};
  Gpt2Config c;
  c.vocab_size = k.integer("vocab_size");
  c.dim = k.integer("n_embd");
  c.n_layers = k.integer("n_layer");
  c.n_heads = k.integer("n_head");
  c.n_positions = k.find("n_positions") ? k.integer("n_positions") : k.integer("n_ctx");
  c.hidden_dim = k.integer_or("n_inner", default_hidden(c.dim));
  c.ln_eps = k.number_or("layer_norm_epsilon", 1e-5);
  c.activation = activation_from(k.string_or("activation_function", "gelu_new"), file);
  c.tie_embeddings = k.boolean_or("tie_word_embeddings", true);
  c.scale_attn_weights = k.boolean_or("scale_attn_weights", true);
  if (k.boolean_or("scale_attn_by_inverse_layer_idx", false))
    throw Error(file, "key 'scale_attn_by_inverse_layer_idx' is true, which is not supported");
  if (k.boolean_or("add_cross_attention", false))
    throw Error(file, "key 'add_cross_attention' is true: encoder-decoder GPT-2 is not supported");
  return c;
}

Gpt2Config from_gguf(const ModelFile& m) {
  const ConfigKeys k{m.hparams, m.path, "gpt2."};
  Gpt2Config c;
  c.dim = k.integer("embedding_length");
  c.n_layers = k.integer("block_count");
  c.n_heads = k.integer("attention.head_count");
  c.n_positions = k.integer("context_length");
  c.hidden_dim = k.integer_or("feed_forward_length", default_hidden(c.dim));
  c.ln_eps = k.number_or("attention.layer_norm_epsilon", 1e-5);
  const Tensor* embd = m.find("token_embd.weight");
  c.vocab_size = k.integer_or("vocab_size", embd && embd->ndim() == 2 ? embd->dim(0) : 0);
  c.tie_embeddings = m.find("output.weight") == nullptr;
  c.activation = Gpt2Activation::GeluTanh;  // ggml's gelu is the tanh approximation
  return c;
}

}  // namespace

void Gpt2Config::validate(const std::string& file, bool gguf_keys) const {
  // The key each field came from, in the file's own naming.
  auto key = [&](const char* hf, const char* gg) { return std::string(gguf_keys ? gg : hf); };
  // The bound keeps products such as 3 * n_embd far from overflow in hostile files.
  auto positive = [&](int64_t v, const std::string& k) {
    if (v <= 0) throw Error(file, "key '" + k + "' must be positive, got " + std::to_string(v));
    if (v > (int64_t(1) << 31))
      throw Error(file, "key '" + k + "' is implausibly large: " + std::to_string(v));
  };
  positive(vocab_size, key("vocab_size", "gpt2.vocab_size"));
  positive(dim, key("n_embd", "gpt2.embedding_length"));
  positive(hidden_dim, key("n_inner", "gpt2.feed_forward_length"));
  positive(n_layers, key("n_layer", "gpt2.block_count"));
  positive(n_heads, key("n_head", "gpt2.attention.head_count"));
  positive(n_positions, key("n_positions", "gpt2.context_length"));
  if (dim % n_heads)
    throw Error(file, "key '" + key("n_embd", "gpt2.embedding_length") + "' (" +
                          std::to_string(dim) + ") is not a multiple of '" +
                          key("n_head", "gpt2.attention.head_count") + "' (" +
                          std::to_string(n_heads) + ")");
  if (!(ln_eps > 0))
    throw Error(file, "key '" + key("layer_norm_epsilon", "gpt2.attention.layer_norm_epsilon") +
                          "' must be positive");
}

json Gpt2Config::to_hf_config() const {
  json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = vocab_size;
  j["n_embd"] = dim;
  j["n_inner"] = hidden_dim;
  j["n_layer"] = n_layers;
  j["n_head"] = n_heads;
  j["n_positions"] = n_positions;
  j["n_ctx"] = n_positions;
  j["layer_norm_epsilon"] = ln_eps;
  j["activation_function"] = activation == Gpt2Activation::GeluTanh ? "gelu_new" : "gelu";
  j["tie_word_embeddings"] = tie_embeddings;
  j["scale_attn_weights"] = scale_attn_weights;
  j["torch_dtype"] = "float32";
  return j;
}

Gpt2Config gpt2_config_from(const ModelFile& m) {
  const bool gguf = m.format == ModelFormat::GGUF;
  const std::string file = gguf ? m.path : m.path + "/config.json";
  if (m.format == ModelFormat::Llama2c)
    throw Error(m.path, "llama2.c checkpoints hold llama models, not GPT-2");
  if (m.format == ModelFormat::Safetensors)
    throw Error(m.path,
                "a bare safetensors file has no config: open its directory (with config.json)");
  if (m.architecture != "gpt2" && m.architecture != "GPT2LMHeadModel")
    throw Error(file, std::string(gguf ? "general.architecture" : "model_type") + " '" +
                          m.architecture + "' is not GPT-2");
  const Gpt2Config c = gguf ? from_gguf(m) : from_hf(m);
  c.validate(file, gguf);
  return c;
}

}  // namespace mcw
