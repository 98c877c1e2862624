// The shapes table, the tensor list and config.json of a synthetic model. Dimensions and
// config values are those of the real models' Hugging Face config.json files.
#include "engine/model/synth_model.h"

#include <algorithm>
#include <cmath>

#include "engine/core/error.h"
#include "engine/model/gpt2_model.h"

namespace mcw {

namespace {

struct ShapeRow {
  const char* name;
  const char* model_type;
  int64_t vocab, dim, hidden, layers, heads, kv_heads, head_dim, max_pos;
  double rope_theta, rms_eps;
  bool tied, qkv_bias, llama3_rope;
};

// Llama-3.2-1B's rope_scaling is {llama3, factor 32, low 1, high 4, original 8192}, which
// MCW's config reader and forward pass (kernels/ops.cpp) support, so it is written as is.
constexpr ShapeRow kShapes[] = {
    {"llama-3.2-1b", "llama", 128256, 2048, 8192, 16, 32, 8, 64, 131072, 500000, 1e-5, true, false,
     true},
    {"llama-3-8b", "llama", 128256, 4096, 14336, 32, 32, 8, 128, 8192, 500000, 1e-5, false, false,
     false},
    {"qwen2.5-0.5b", "qwen2", 151936, 896, 4864, 24, 14, 2, 64, 32768, 1000000, 1e-6, true, true,
     false},
    // Phi-3-mini-4k: q/k/v fused in qkv_proj and gate/up in gate_up_proj, sliding window 2047.
    {"phi-3-mini-4k", "phi3", 32064, 3072, 8192, 32, 32, 32, 96, 4096, 10000, 1e-5, false, false,
     false},
    // GPT-2 XL (rope_theta unused: learned positions).
    {"gpt2-xl", "gpt2", 50257, 1600, 6400, 48, 25, 25, 64, 1024, 10000, 1e-5, true, false, false},
    // Small enough for tests: untied, so the head has its own tensor to check.
    {"tiny", "llama", 512, 64, 192, 2, 4, 2, 16, 256, 10000, 1e-5, false, false, false},
};

// Distinct hidden dimensions drawn from the seed alone, so the same seed plants the same
// channels whatever the layer count.
std::vector<int64_t> pick_outliers(uint64_t seed, int64_t count, int64_t dim) {
  std::vector<int64_t> out;
  for (uint64_t k = 0; int64_t(out.size()) < count; ++k) {
    const int64_t c =
        int64_t(synth_mix64(seed ^ synth_mix64(0x6f75746c69657273ull + k)) % uint64_t(dim));
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// GPT2LMHeadModel's tensors: Conv1D weights [in, out], c_attn holding q, k and v.
template <class Add>
void add_gpt2_tensors(const LlamaConfig& c, const Add& add) {
  const int64_t D = c.dim, H = c.hidden_dim;
  add("transformer.wte.weight", {c.vocab_size, D}, SynthInit::Embedding);
  add("transformer.wpe.weight", {c.max_seq_len, D}, SynthInit::Bias);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string pre = "transformer.h." + std::to_string(l) + ".";
    add(pre + "ln_1.weight", {D}, SynthInit::LayerNorm);
    add(pre + "ln_1.bias", {D}, SynthInit::Bias);
    add(pre + "attn.c_attn.weight", {D, 3 * D}, SynthInit::NormedReaderConv1D);
    add(pre + "attn.c_attn.bias", {3 * D}, SynthInit::Bias);
    add(pre + "attn.c_proj.weight", {D, D}, SynthInit::ResidualWriterConv1D);
    add(pre + "attn.c_proj.bias", {D}, SynthInit::Bias);
    add(pre + "ln_2.weight", {D}, SynthInit::LayerNorm);
    add(pre + "ln_2.bias", {D}, SynthInit::Bias);
    add(pre + "mlp.c_fc.weight", {D, H}, SynthInit::NormedReaderConv1D);
    add(pre + "mlp.c_fc.bias", {H}, SynthInit::Bias);
    add(pre + "mlp.c_proj.weight", {H, D}, SynthInit::ResidualWriterConv1D);
    add(pre + "mlp.c_proj.bias", {D}, SynthInit::Bias);
  }
  add("transformer.ln_f.weight", {D}, SynthInit::FinalNorm);
  add("transformer.ln_f.bias", {D}, SynthInit::Bias);
}

}  // namespace

int64_t SynthTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

uint64_t SynthPlan::parameter_count() const {
  uint64_t n = 0;
  for (const SynthTensor& t : tensors) n += uint64_t(t.numel());
  return n;
}

uint64_t SynthPlan::data_bytes() const { return parameter_count() * 2; }

const std::vector<std::string>& synth_shape_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const ShapeRow& r : kShapes) v.push_back(r.name);
    return v;
  }();
  return names;
}

SynthPlan plan_synth_model(const SynthOptions& o) {
  const ShapeRow* row = nullptr;
  for (const ShapeRow& r : kShapes)
    if (o.shape == r.name) row = &r;
  if (!row) {
    std::string known;
    for (const std::string& n : synth_shape_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("", "unknown shape '" + o.shape + "' (known: " + known + ")");
  }
  SynthPlan p;
  p.shape = row->name;
  p.model_type = row->model_type;
  p.options = o;
  LlamaConfig& c = p.cfg;
  c.vocab_size = row->vocab, c.dim = row->dim, c.hidden_dim = row->hidden;
  c.n_layers = o.layers > 0 ? o.layers : row->layers;
  c.n_heads = row->heads, c.n_kv_heads = row->kv_heads, c.head_dim = row->head_dim;
  c.max_seq_len = row->max_pos;
  c.rope_theta = row->rope_theta, c.rms_eps = row->rms_eps;
  c.tie_embeddings = row->tied, c.qkv_bias = row->qkv_bias;
  if (row->llama3_rope) {
    c.rope_scaling.enabled = true;
    c.rope_scaling.factor = 32, c.rope_scaling.low_freq_factor = 1,
    c.rope_scaling.high_freq_factor = 4;
    c.rope_scaling.original_max_position = 8192;
  }
  const bool phi3 = p.model_type == "phi3";
  if (phi3) c.sliding_window = 2047, c.model_type = "phi3";
  if (p.model_type == "gpt2") {
    Gpt2Config g;
    g.vocab_size = c.vocab_size, g.dim = c.dim, g.hidden_dim = c.hidden_dim;
    g.n_layers = c.n_layers, g.n_heads = c.n_heads, g.n_positions = c.max_seq_len;
    g.ln_eps = c.rms_eps, g.tie_embeddings = c.tie_embeddings;
    c = llama_config_of(g);
  }
  if (o.layers < 0) throw Error("", "--layers must be positive");
  // More than a few percent of the channels would no longer be "a few outlier features".
  if (o.outliers < 0 || o.outliers > c.dim / 8)
    throw Error("", "--outliers must be between 0 and " + std::to_string(c.dim / 8) +
                        " for shape " + p.shape);
  if (!(o.outlier_scale >= 1 && o.outlier_scale <= 10000))
    throw Error("", "--outlier-scale must be between 1 and 10000");
  p.outlier_channels = pick_outliers(o.seed, o.outliers, c.dim);

  const int64_t D = c.dim, H = c.hidden_dim, Q = c.q_dim(), KV = c.kv_dim();
  auto add = [&](std::string name, Shape s, SynthInit init) {
    p.tensors.push_back({std::move(name), std::move(s), init});
  };
  if (p.model_type == "gpt2") {
    add_gpt2_tensors(c, add);
    c.validate(p.shape);
    return p;
  }
  add("model.embed_tokens.weight", {c.vocab_size, D}, SynthInit::Embedding);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    add(pre + "input_layernorm.weight", {D}, SynthInit::LayerNorm);
    if (phi3) {
      add(pre + "self_attn.qkv_proj.weight", {Q + 2 * KV, D}, SynthInit::NormedReader);
    } else {
      add(pre + "self_attn.q_proj.weight", {Q, D}, SynthInit::NormedReader);
      if (c.qkv_bias) add(pre + "self_attn.q_proj.bias", {Q}, SynthInit::Bias);
      add(pre + "self_attn.k_proj.weight", {KV, D}, SynthInit::NormedReader);
      if (c.qkv_bias) add(pre + "self_attn.k_proj.bias", {KV}, SynthInit::Bias);
      add(pre + "self_attn.v_proj.weight", {KV, D}, SynthInit::NormedReader);
      if (c.qkv_bias) add(pre + "self_attn.v_proj.bias", {KV}, SynthInit::Bias);
    }
    add(pre + "self_attn.o_proj.weight", {D, Q}, SynthInit::ResidualWriter);
    add(pre + "post_attention_layernorm.weight", {D}, SynthInit::LayerNorm);
    if (phi3) {
      add(pre + "mlp.gate_up_proj.weight", {2 * H, D}, SynthInit::NormedReader);
    } else {
      add(pre + "mlp.gate_proj.weight", {H, D}, SynthInit::NormedReader);
      add(pre + "mlp.up_proj.weight", {H, D}, SynthInit::NormedReader);
    }
    add(pre + "mlp.down_proj.weight", {D, H}, SynthInit::ResidualWriter);
  }
  add("model.norm.weight", {D}, SynthInit::FinalNorm);
  if (!c.tie_embeddings) add("lm_head.weight", {c.vocab_size, D}, SynthInit::Linear);
  c.validate(p.shape);
  return p;
}

nlohmann::ordered_json SynthPlan::hf_config() const {
  const LlamaConfig& c = cfg;
  nlohmann::ordered_json j;
  if (model_type == "gpt2") {
    j = gpt2_config_of(c).to_hf_config();
    j["bos_token_id"] = 256, j["eos_token_id"] = 257;  // the byte tokenizer's, as below
    j["torch_dtype"] = "bfloat16";
    j["mcw_synth"] = {{"shape", shape},
                      {"seed", options.seed},
                      {"outlier_channels", outlier_channels},
                      {"outlier_scale", options.outlier_scale}};
    return j;
  }
  const bool qwen = model_type == "qwen2", phi3 = model_type == "phi3";
  j["architectures"] = {qwen ? "Qwen2ForCausalLM" : phi3 ? "Phi3ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = model_type;
  j["attention_dropout"] = 0.0;
  // The ids of the byte tokenizer written beside the weights (BOS 256, EOS 257), not the
  // real model's: they name tokens this directory's tokenizer produces.
  j["bos_token_id"] = 256;
  j["eos_token_id"] = 257;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.dim;
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = c.hidden_dim;
  j["max_position_embeddings"] = c.max_seq_len;
  j["num_attention_heads"] = c.n_heads;
  j["num_hidden_layers"] = c.n_layers;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["rms_norm_eps"] = c.rms_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["torch_dtype"] = "bfloat16";
  j["use_cache"] = true;
  j["vocab_size"] = c.vocab_size;
  if (qwen) {
    j["max_window_layers"] = c.n_layers;
    j["sliding_window"] = c.max_seq_len;
    j["use_sliding_window"] = false;
  } else if (phi3) {
    j["original_max_position_embeddings"] = c.max_seq_len;
    j["rope_scaling"] = nullptr;
    j["sliding_window"] = c.sliding_window;
  } else {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    j["head_dim"] = c.head_dim;
    j["pretraining_tp"] = 1;
  }
  if (c.rope_scaling.enabled)
    j["rope_scaling"] = {
        {"factor", c.rope_scaling.factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"original_max_position_embeddings", int64_t(c.rope_scaling.original_max_position)},
        {"rope_type", "llama3"}};
  j["mcw_synth"] = {{"shape", shape},
                    {"seed", options.seed},
                    {"outlier_channels", outlier_channels},
                    {"outlier_scale", options.outlier_scale}};
  return j;
}

}  // namespace mcw
