#include "engine/model/llama_config.h"

#include <algorithm>
#include <cmath>

#include "engine/core/error.h"
#include "engine/model/config_keys.h"
#include "engine/model/gpt2_model.h"
#include "engine/model/rope_freq_factors.h"

namespace mcw {

using json = nlohmann::ordered_json;

namespace {

// transformers' _compute_longrope_parameters: the factor is max_position_embeddings over
// original_max_position_embeddings (when the config has the latter), and the attention
// factor, unless given, sqrt(1 + ln(factor) / ln(original)) for factors above 1.
double long_rope_attention_factor(int64_t max_position, int64_t original) {
  const double factor = double(max_position) / double(original);
  return factor <= 1 ? 1.0 : std::sqrt(1 + std::log(factor) / std::log(double(original)));
}

LongRope long_rope_from(const ConfigKeys& top, const ConfigKeys& rs, const LlamaConfig& c, const std::string& file) {
  LongRope l;
  auto factors = [&](const char* key) {
    const json* v = rs.find(key);
    std::vector<double> out;
    if (v && v->is_array())
      for (const json& f : *v)
        if (f.is_number() && f.get<double>() > 0) out.push_back(f.get<double>());
    if (!v || !v->is_array() || out.size() != v->size() || int64_t(out.size()) != c.head_dim / 2)
      throw Error(file, std::string("rope_scaling.") + key + " must be " + std::to_string(c.head_dim / 2) +
                            " positive numbers (head_dim / 2)");
    return out;
  };
  l.short_factor = factors("short_factor");
  l.long_factor = factors("long_factor");
  l.original_max_position = top.integer_or("original_max_position_embeddings", c.max_seq_len);
  if (l.original_max_position <= 0) throw Error(file, "original_max_position_embeddings must be positive");
  const json* af = rs.find("attention_factor");
  l.attention_factor = af && af->is_number() ? af->get<double>()
                                             : long_rope_attention_factor(c.max_seq_len, l.original_max_position);
  if (!(l.attention_factor > 0)) throw Error(file, "rope_scaling.attention_factor must be positive");
  return l;
}

// The per-block widths to_hf_config writes (mcw_block_shapes): one object per layer.
std::vector<BlockShape> block_shapes_from(const json& v, const LlamaConfig& c,
                                          const std::string& file) {
  if (!v.is_array() || int64_t(v.size()) != c.n_layers)
    throw Error(file, "key 'mcw_block_shapes' must list " + std::to_string(c.n_layers) + " blocks");
  std::vector<BlockShape> out;
  for (size_t l = 0; l < v.size(); ++l) {
    if (!v[l].is_object())
      throw Error(file, "mcw_block_shapes[" + std::to_string(l) + "] must be an object");
    const ConfigKeys b{v[l], file, ""};
    out.push_back({b.integer("num_attention_heads"), b.integer("num_key_value_heads"),
                   b.integer("intermediate_size")});
  }
  return out;
}

LlamaConfig from_hf(const ModelFile& m) {
  const std::string file = m.path + "/config.json";
  const ConfigKeys r{m.hparams, file, ""};
  const std::string type = m.architecture;
  if (type != "llama" && type != "mistral" && type != "qwen2" && type != "phi3")
    throw Error(file, "model_type '" + type + "' is not supported (llama, mistral, qwen2 and phi3 are)");
  // Phi-4-mini rotates only part of each head; MCW's RoPE rotates whole heads.
  if (const json* f = r.find("partial_rotary_factor"); f && f->is_number() && f->get<double>() != 1.0)
    throw Error(file, "partial_rotary_factor " + f->dump() + " is not supported (whole-head RoPE only)");
  LlamaConfig c;
  c.vocab_size = r.integer("vocab_size");
  c.dim = r.integer("hidden_size");
  c.hidden_dim = r.integer("intermediate_size");
  c.n_layers = r.integer("num_hidden_layers");
  c.n_heads = r.integer("num_attention_heads");
  c.n_kv_heads = r.integer_or("num_key_value_heads", c.n_heads);
  c.head_dim = r.integer_or("head_dim", c.n_heads > 0 ? c.dim / c.n_heads : 0);
  c.max_seq_len = r.integer_or("max_position_embeddings", 2048);
  c.rope_theta = r.number_or("rope_theta", 10000);
  c.rms_eps = r.number_or("rms_norm_eps", 1e-6);
  c.tie_embeddings = r.boolean_or("tie_word_embeddings", type == "qwen2");
  c.model_type = type;
  // Mistral v0.1 sets sliding_window (later versions null); Qwen2 sets it too but only uses
  // it with use_sliding_window, which its released models leave off, and then only in the
  // layers from max_window_layers on (transformers' Qwen2 layer_types).
  if (const json* sw = r.find("sliding_window"); sw && sw->is_number_integer() &&
                                                 r.boolean_or("use_sliding_window", type != "qwen2")) {
    const int64_t first = type == "qwen2" ? r.integer_or("max_window_layers", 28) : 0;
    if (first <= 0) c.sliding_window = r.integer("sliding_window");
    else if (first < c.n_layers)
      throw Error(file, "sliding windows in layers " + std::to_string(first) + " and later only "
                        "(max_window_layers) are not supported: MCW windows every layer or none");
  }
  // transformers' attention_bias puts biases on q/k/v/o, mlp_bias on gate/up/down; an
  // o/down bias without the flag is loaded when the file has it.
  const bool attention_bias = r.boolean_or("attention_bias", false);
  c.qkv_bias = type == "qwen2" || attention_bias;
  c.o_bias = attention_bias || m.find("model.layers.0.self_attn.o_proj.bias");
  c.down_bias = r.boolean_or("mlp_bias", false) || m.find("model.layers.0.mlp.down_proj.bias");
  if (const json* shapes = r.find("mcw_block_shapes"))
    c.set_block_shapes(block_shapes_from(*shapes, c, file));
  if (const json* rs = r.find("rope_scaling"); rs && rs->is_object()) {
    const ConfigKeys s{*rs, file, ""};
    std::string kind = rs->value("rope_type", rs->value("type", std::string()));
    if (kind == "llama3") {
      c.rope_scaling.enabled = true;
      c.rope_scaling.factor = s.number_or("factor", 8);
      c.rope_scaling.low_freq_factor = s.number_or("low_freq_factor", 1);
      c.rope_scaling.high_freq_factor = s.number_or("high_freq_factor", 4);
      c.rope_scaling.original_max_position = s.number_or("original_max_position_embeddings", 8192);
    } else if (kind == "longrope" || kind == "su") {
      c.long_rope = long_rope_from(r, s, c, file);
    } else if (kind != "default" && !kind.empty()) {
      throw Error(file, "rope_scaling type '" + kind + "' is not supported (llama3 and longrope are)");
    }
  }
  return c;
}

LlamaConfig from_gguf(const ModelFile& m) {
  const std::string arch = m.architecture;
  if (arch != "llama" && arch != "qwen2" && arch != "phi3")
    throw Error(m.path, "general.architecture '" + arch + "' is not supported (llama, qwen2 and phi3 are)");
  const ConfigKeys r{m.hparams, m.path, arch + "."};
  LlamaConfig c;
  c.dim = r.integer("embedding_length");
  c.hidden_dim = r.integer("feed_forward_length");
  c.n_layers = r.integer("block_count");
  c.n_heads = r.integer("attention.head_count");
  c.n_kv_heads = r.integer_or("attention.head_count_kv", c.n_heads);
  c.head_dim = r.integer_or("attention.key_length", c.n_heads > 0 ? c.dim / c.n_heads : 0);
  c.max_seq_len = r.integer_or("context_length", 2048);
  c.rope_theta = r.number_or("rope.freq_base", 10000);
  c.rms_eps = r.number_or("attention.layer_norm_rms_epsilon", 1e-5);
  const Tensor* embd = m.find("token_embd.weight");
  c.vocab_size = r.integer_or("vocab_size", embd && embd->ndim() == 2 ? embd->dim(0) : 0);
  c.tie_embeddings = m.find("output.weight") == nullptr;
  c.model_type = arch;
  c.qkv_bias = arch == "qwen2" || m.find("blk.0.attn_q.bias") != nullptr;
  c.o_bias = m.find("blk.0.attn_output.bias") != nullptr;
  c.down_bias = m.find("blk.0.ffn_down.bias") != nullptr;
  c.sliding_window = r.integer_or("attention.sliding_window", 0);
  if (const Tensor* s = m.find("rope_factors_short.weight")) {  // Phi-3's LongRoPE
    const Tensor* l = m.find("rope_factors_long.weight");
    auto factors = [&](const Tensor* t, const char* name) {
      if (!t || t->numel() != c.head_dim / 2)
        throw Error(m.path, std::string(name) + " must hold " + std::to_string(c.head_dim / 2) +
                                " factors (head_dim / 2)");
      const std::vector<float> f = t->to_f32();
      for (float v : f)
        if (!(v > 0)) throw Error(m.path, std::string(name) + " holds a factor that is not positive");
      return std::vector<double>(f.begin(), f.end());
    };
    c.long_rope.short_factor = factors(s, "rope_factors_short.weight");
    c.long_rope.long_factor = factors(l, "rope_factors_long.weight");
    c.long_rope.original_max_position = r.integer_or("rope.scaling.original_context_length", c.max_seq_len);
    c.long_rope.attention_factor = r.number_or("rope.scaling.attn_factor", 1);
    if (c.long_rope.original_max_position <= 0 || !(c.long_rope.attention_factor > 0))
      throw Error(m.path, "LongRoPE's original context length and attention factor must be positive");
  }
  if (const Tensor* f = m.find("rope_freqs.weight")) {  // Llama 3.x scaling
    if (f->numel() > 1 << 16) throw Error(m.path, "rope_freqs.weight has too many values");
    c.rope_scaling = llama3_scaling_from_factors(f->to_f32(), c, m.path);
  }
  return c;
}

LlamaConfig from_llama2c(const ModelFile& m) {
  const ConfigKeys r{m.hparams, m.path, ""};
  LlamaConfig c;
  c.dim = r.integer("dim");
  c.hidden_dim = r.integer("hidden_dim");
  c.n_layers = r.integer("n_layers");
  c.n_heads = r.integer("n_heads");
  c.n_kv_heads = r.integer("n_kv_heads");
  c.vocab_size = r.integer("vocab_size");
  c.max_seq_len = r.integer("seq_len");
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  c.tie_embeddings = r.boolean_or("shared_classifier", true);
  return c;
}

}  // namespace

void LlamaConfig::validate(const std::string& file) const {
  auto positive = [&](int64_t v, const char* what) {
    if (v <= 0) throw Error(file, std::string(what) + " must be positive, got " + std::to_string(v));
  };
  positive(vocab_size, "vocab size");
  positive(dim, "hidden size");
  positive(hidden_dim, "intermediate size");
  positive(n_layers, "layer count");
  positive(n_heads, "attention head count");
  positive(n_kv_heads, "key/value head count");
  positive(head_dim, "head dimension");
  if (n_heads % n_kv_heads)
    throw Error(file, "attention heads (" + std::to_string(n_heads) +
                          ") are not a multiple of key/value heads (" + std::to_string(n_kv_heads) + ")");
  if (head_dim % 2 && !learned_positions) throw Error(file, "head dimension " + std::to_string(head_dim) + " must be even for RoPE");
  if (!(rms_eps > 0)) throw Error(file, "rms norm epsilon must be positive");
  if (!(rope_theta > 0)) throw Error(file, "rope theta must be positive");
  if (sliding_window < 0) throw Error(file, "sliding window must not be negative");
  if (uniform()) return;
  if (int64_t(block_shapes.size()) != n_layers)
    throw Error(file, std::to_string(block_shapes.size()) + " block shapes for " +
                          std::to_string(n_layers) + " layers");
  for (size_t l = 0; l < block_shapes.size(); ++l) {
    const BlockShape& b = block_shapes[l];
    const std::string at = "block " + std::to_string(l) + ": ";
    if (b.n_heads <= 0 || b.n_kv_heads <= 0 || b.hidden_dim <= 0)
      throw Error(file, at + "heads, key/value heads and intermediate size must be positive");
    if (b.n_heads % b.n_kv_heads)
      throw Error(file, at + "attention heads are not a multiple of key/value heads");
    if (b.n_heads > n_heads || b.n_kv_heads > n_kv_heads || b.hidden_dim > hidden_dim)
      throw Error(file, at + "wider than the model's largest block");
  }
}

void LlamaConfig::set_block_shapes(std::vector<BlockShape> shapes) {
  block_shapes.clear();
  if (shapes.empty()) return;
  n_heads = n_kv_heads = hidden_dim = 0;
  bool same = true;
  for (const BlockShape& b : shapes) {
    n_heads = std::max(n_heads, b.n_heads), n_kv_heads = std::max(n_kv_heads, b.n_kv_heads);
    hidden_dim = std::max(hidden_dim, b.hidden_dim);
    same = same && b == shapes.front();
  }
  if (!same) block_shapes = std::move(shapes);
}

std::string LlamaConfig::hf_model_type() const {
  if (model_type == "gpt2") return "gpt2";  // its block is no other family's
  if (!uniform()) return "llama";           // written as llama with MCW's block shapes
  if (model_type == "qwen2" && qkv_bias && !o_bias && !down_bias) return "qwen2";
  if (model_type == "phi3" && !qkv_bias && !o_bias && !down_bias && q_dim() == dim) return "phi3";
  return sliding_window > 0 ? "mistral" : "llama";
}

json LlamaConfig::to_hf_config() const {
  if (model_type == "gpt2") return gpt2_config_of(*this).to_hf_config();
  json j;
  const std::string type = hf_model_type();
  const bool qwen2 = type == "qwen2", mistral = type == "mistral", phi3 = type == "phi3";
  j["architectures"] = {qwen2    ? "Qwen2ForCausalLM"
                        : mistral ? "MistralForCausalLM"
                        : phi3    ? "Phi3ForCausalLM"
                                  : "LlamaForCausalLM"};
  j["model_type"] = type;
  if (phi3) j["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
  if (qwen2) {
    j["use_sliding_window"] = sliding_window > 0;
    j["sliding_window"] = sliding_window > 0 ? sliding_window : max_seq_len;
    j["max_window_layers"] = sliding_window > 0 ? 0 : n_layers;  // windowed from this layer on
  }
  if (mistral) j["sliding_window"] = sliding_window;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = dim;
  j["intermediate_size"] = hidden_dim;
  j["num_hidden_layers"] = n_layers;
  j["num_attention_heads"] = n_heads;
  j["num_key_value_heads"] = n_kv_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_seq_len;
  j["rope_theta"] = rope_theta;
  j["rms_norm_eps"] = rms_eps;
  j["tie_word_embeddings"] = tie_embeddings;
  // transformers' flags cover q/k/v/o and gate/up/down together: the writer stores zero
  // biases for the members this model lacks (llama_save.cpp), so the file loads as is.
  if (!qwen2 && !phi3) {  // Phi-3's config has no bias flags (and its model no biases)
    j["attention_bias"] = qkv_bias || o_bias;
    j["mlp_bias"] = down_bias;
  }
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  // transformers has no per-block widths for llama: it refuses such a model's weights
  // (their shapes do not match); MCW's loader reads them back from this key.
  if (!uniform()) {
    json shapes = json::array();
    for (const BlockShape& b : block_shapes)
      shapes.push_back({{"num_attention_heads", b.n_heads},
                        {"num_key_value_heads", b.n_kv_heads},
                        {"intermediate_size", b.hidden_dim}});
    j["mcw_block_shapes"] = shapes;
  }
  if (long_rope.enabled()) {
    j["original_max_position_embeddings"] = long_rope.original_max_position;
    j["rope_scaling"] = {{phi3 ? "type" : "rope_type", "longrope"},
                         {"short_factor", long_rope.short_factor},
                         {"long_factor", long_rope.long_factor}};
    // Older transformers' Phi3Config takes exactly these three fields: the attention factor
    // goes in only where it is not the one derived from the context lengths.
    if (long_rope.attention_factor != long_rope_attention_factor(max_seq_len, long_rope.original_max_position))
      j["rope_scaling"]["attention_factor"] = long_rope.attention_factor;
  } else if (phi3) {
    j["original_max_position_embeddings"] = max_seq_len;
    j["rope_scaling"] = nullptr;
  }
  if (rope_scaling.enabled)
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", rope_scaling.factor},
                         {"low_freq_factor", rope_scaling.low_freq_factor},
                         {"high_freq_factor", rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", rope_scaling.original_max_position}};
  return j;
}

LlamaConfig llama_config_from(const ModelFile& m) {
  if (is_gpt2(m)) return llama_config_of(gpt2_config_from(m));  // checked in GPT-2's key names
  LlamaConfig c;
  switch (m.format) {
    case ModelFormat::HFDirectory: c = from_hf(m); break;
    case ModelFormat::GGUF: c = from_gguf(m); break;
    case ModelFormat::Llama2c: c = from_llama2c(m); break;
    case ModelFormat::Safetensors:
      throw Error(m.path, "a bare safetensors file has no config: open its directory (with config.json)");
    case ModelFormat::ONNX:
      throw Error(m.path,
                  "an ONNX graph is not a language model MCW runs (inspect shows its weights)");
  }
  c.validate(m.path);
  return c;
}

}  // namespace mcw
