// GPT-2 against a deliberately naive reference: plain loops in double, no shared kernels,
// Conv1D semantics (y = x·W + b with W stored [in, out]) read straight from the HF file,
// attention recomputed from scratch for every position. Then the KV cache, the two file
// formats, evaluation through the model-agnostic interface, and one-line errors.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numbers>
#include <optional>
#include <random>

#include "engine/compress/algorithm.h"
#include "engine/compress/calibrate.h"
#include "engine/compress/compress_llama.h"
#include "engine/compress/smoothquant_stage.h"
#include "engine/compress/structured_stage.h"
#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/eval/perplexity.h"
#include "engine/io/gguf.h"
#include "engine/io/safetensors.h"
#include "engine/kernels/ops.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/causal_lm.h"
#include "engine/model/gpt2_save.h"
#include "engine/model/llama_save.h"
#include "engine/recipe/recipe.h"
#include "engine/train/llama_backprop.h"
#include "gpt2_test_util.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

using Vec = std::vector<double>;

struct RefLinear {  // Conv1D: w is [in][out]
  int64_t in = 0, out = 0;
  Vec w, b;
  Vec operator()(const Vec& x) const {
    Vec y(b);
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < out; ++o) y[size_t(o)] += x[size_t(i)] * w[size_t(i * out + o)];
    return y;
  }
};

struct RefBlock {
  Vec ln1_w, ln1_b, ln2_w, ln2_b;
  RefLinear qkv, proj, fc, down;
};

struct RefModel {
  int64_t V = 0, D = 0, heads = 0;
  double eps = 1e-5;
  Vec wte, wpe, lnf_w, lnf_b, head;  // head [V][D]
  std::vector<RefBlock> blocks;
};

Vec values(const Tensor& t) {
  Vec v(size_t(t.numel()));
  std::vector<float> f(v.size());
  t.to_f32(f.data(), 0, f.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = f[i];
  return v;
}

Vec transpose(const Vec& w, int64_t rows, int64_t cols) {
  Vec out(w.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[size_t(c * rows + r)] = w[size_t(r * cols + c)];
  return out;
}

// Straight from an HF file's tensors, read as transformers reads them.
RefModel reference_from_hf(const ModelFile& f, const std::string& prefix, int64_t heads) {
  auto get = [&](const std::string& name) {
    const Tensor* t = f.find(name);
    EXPECT_NE(t, nullptr) << name;
    return t;
  };
  auto linear = [&](const std::string& name) {
    const Tensor* w = get(name + ".weight");
    return RefLinear{w->dim(0), w->dim(1), values(*w), values(*get(name + ".bias"))};
  };
  RefModel r;
  r.heads = heads;
  const Tensor* wte = get(prefix + "wte.weight");
  r.V = wte->dim(0), r.D = wte->dim(1);
  r.wte = values(*wte);
  r.wpe = values(*get(prefix + "wpe.weight"));
  r.lnf_w = values(*get(prefix + "ln_f.weight"));
  r.lnf_b = values(*get(prefix + "ln_f.bias"));
  r.head = f.find("lm_head.weight") ? values(*f.find("lm_head.weight")) : r.wte;
  for (int l = 0; f.find(prefix + "h." + std::to_string(l) + ".ln_1.weight"); ++l) {
    const std::string p = prefix + "h." + std::to_string(l) + ".";
    r.blocks.push_back({values(*get(p + "ln_1.weight")), values(*get(p + "ln_1.bias")),
                        values(*get(p + "ln_2.weight")), values(*get(p + "ln_2.bias")),
                        linear(p + "attn.c_attn"), linear(p + "attn.c_proj"),
                        linear(p + "mlp.c_fc"), linear(p + "mlp.c_proj")});
  }
  return r;
}

// From an in-memory model, whose linear weights are [out, in].
RefModel reference_from_model(const Gpt2Model& m) {
  auto linear = [](const Tensor& w, const Tensor& b) {
    return RefLinear{w.dim(1), w.dim(0), transpose(values(w), w.dim(0), w.dim(1)), values(b)};
  };
  RefModel r;
  r.V = m.cfg.vocab_size, r.D = m.cfg.dim, r.heads = m.cfg.n_heads, r.eps = m.cfg.ln_eps;
  r.wte = values(m.tok_embd), r.wpe = values(m.pos_embd);
  r.lnf_w = values(m.out_norm_w), r.lnf_b = values(m.out_norm_b);
  r.head = values(m.lm_head());
  for (const Gpt2Layer& L : m.layers)
    r.blocks.push_back({values(L.ln1_w), values(L.ln1_b), values(L.ln2_w), values(L.ln2_b),
                        linear(L.w_qkv, L.b_qkv), linear(L.w_o, L.b_o), linear(L.w_up, L.b_up),
                        linear(L.w_down, L.b_down)});
  return r;
}

Vec layernorm(const Vec& x, const Vec& w, const Vec& b, double eps) {
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= double(x.size());
  for (double v : x) var += (v - mean) * (v - mean);
  var /= double(x.size());
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = (x[i] - mean) / std::sqrt(var + eps) * w[i] + b[i];
  return y;
}

double gelu(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

// Each block's four linear inputs, one row per token: ln_1's output (c_attn's), the
// attention output (c_proj's), ln_2's output (c_fc's) and the GELU (mlp.c_proj's).
using BlockInputs = std::array<std::vector<Vec>, 4>;

std::vector<Vec> reference_logits(const RefModel& r, const std::vector<int32_t>& toks,
                                  std::vector<BlockInputs>* inputs = nullptr) {
  const size_t T = toks.size();
  const int64_t D = r.D, hd = D / r.heads;
  std::vector<Vec> x(T, Vec(size_t(D)));
  for (size_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < D; ++i)
      x[t][size_t(i)] = r.wte[size_t(toks[t] * D + i)] + r.wpe[size_t(int64_t(t) * D + i)];
  for (const RefBlock& B : r.blocks) {
    BlockInputs in;
    std::vector<Vec> qkv(T);
    for (size_t t = 0; t < T; ++t) {
      in[0].push_back(layernorm(x[t], B.ln1_w, B.ln1_b, r.eps));
      qkv[t] = B.qkv(in[0].back());
    }
    for (size_t t = 0; t < T; ++t) {
      Vec att(size_t(D), 0.0);
      for (int64_t h = 0; h < r.heads; ++h) {
        Vec s(t + 1);
        double mx = -1e300, z = 0;
        for (size_t u = 0; u <= t; ++u) {
          s[u] = 0;
          for (int64_t i = 0; i < hd; ++i)
            s[u] += qkv[t][size_t(h * hd + i)] * qkv[u][size_t(D + h * hd + i)];
          s[u] /= std::sqrt(double(hd));
          mx = std::max(mx, s[u]);
        }
        for (double& v : s) z += (v = std::exp(v - mx));
        for (size_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < hd; ++i)
            att[size_t(h * hd + i)] += s[u] / z * qkv[u][size_t(2 * D + h * hd + i)];
      }
      in[1].push_back(att);
      const Vec o = B.proj(att);
      for (int64_t i = 0; i < D; ++i) x[t][size_t(i)] += o[size_t(i)];
    }
    for (size_t t = 0; t < T; ++t) {
      in[2].push_back(layernorm(x[t], B.ln2_w, B.ln2_b, r.eps));
      Vec hidden = B.fc(in[2].back());
      for (double& v : hidden) v = gelu(v);
      in[3].push_back(hidden);
      const Vec o = B.down(hidden);
      for (int64_t i = 0; i < D; ++i) x[t][size_t(i)] += o[size_t(i)];
    }
    if (inputs) inputs->push_back(std::move(in));
  }
  std::vector<Vec> logits(T, Vec(size_t(r.V), 0.0));
  for (size_t t = 0; t < T; ++t) {
    const Vec h = layernorm(x[t], r.lnf_w, r.lnf_b, r.eps);
    for (int64_t v = 0; v < r.V; ++v)
      for (int64_t i = 0; i < D; ++i)
        logits[t][size_t(v)] += h[size_t(i)] * r.head[size_t(v * D + i)];
  }
  return logits;
}

// GPT-2 runs as the llama decoder's variant.
std::vector<float> forward_all(const LlamaModel& m, const std::vector<int32_t>& toks) {
  KVCache cache(m.cfg, int64_t(toks.size()));
  std::vector<float> logits(toks.size() * size_t(m.cfg.vocab_size));
  llama_forward(m, toks, cache, logits.data());
  return logits;
}
std::vector<float> forward_all(const Gpt2Model& m, const std::vector<int32_t>& toks) {
  return forward_all(llama_from_gpt2(m), toks);
}

// max |got - ref| / max |ref| over all logits.
double relative_error(const std::vector<float>& got, const std::vector<Vec>& ref) {
  double err = 0, scale = 0;
  const size_t V = ref[0].size();
  for (size_t t = 0; t < ref.size(); ++t)
    for (size_t v = 0; v < V; ++v) {
      err = std::max(err, std::fabs(double(got[t * V + v]) - ref[t][v]));
      scale = std::max(scale, std::fabs(ref[t][v]));
    }
  return err / scale;
}

const std::vector<int32_t> kTokens = {3, 17, 40, 0, 8, 8, 22, 31, 5, 12, 39};

void rewrite_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(test::read_bytes(dir / "config.json"));
  edit(j);
  test::write_bytes(dir / "config.json", j.dump(2));
}

// Loading `dir` throws one mcw::Error line that contains every phrase.
void expect_load_error(const std::string& path, const std::vector<std::string>& phrases) {
  try {
    load_gpt2(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    for (const std::string& p : phrases) EXPECT_NE(what.find(p), std::string::npos) << what;
  }
}

}  // namespace

TEST(Gpt2Kernels, LayerNormAndGeluFollowTheirDefinitions) {
  std::mt19937 rng(1);
  const int64_t rows = 3, dim = 37;
  const Tensor x = test::random_tensor({rows, dim}, rng, 2.0f, 5.0f);  // large mean
  const Tensor w = test::random_tensor({dim}, rng, 0.3f, 1.0f),
               b = test::random_tensor({dim}, rng, 0.3f);
  std::vector<float> y(size_t(rows * dim));
  layernorm_rows(x.as<float>(), w.as<float>(), b.as<float>(), y.data(), rows, dim, 1e-5);
  const Vec xv = values(x), wv = values(w), bv = values(b);
  for (int64_t r = 0; r < rows; ++r) {
    const Vec ref = layernorm(Vec(xv.begin() + r * dim, xv.begin() + (r + 1) * dim), wv, bv, 1e-5);
    for (int64_t i = 0; i < dim; ++i) EXPECT_NEAR(y[size_t(r * dim + i)], ref[size_t(i)], 2e-6);
  }
  std::vector<float> g = {-6.0f, -1.5f, -0.3f, 0.0f, 0.2f, 1.0f, 3.0f, 9.0f};
  const std::vector<float> in = g;
  gelu_tanh(g.data(), int64_t(g.size()));
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], gelu(in[i]), 1e-6) << in[i];
  EXPECT_EQ(g[3], 0.0f);
  std::vector<float> e = in;
  gelu_erf(e.data(), int64_t(e.size()));
  for (size_t i = 0; i < e.size(); ++i)
    EXPECT_NEAR(e[i], 0.5 * in[i] * (1 + std::erf(in[i] / std::sqrt(2.0))), 1e-6) << in[i];
}

TEST(Gpt2Forward, MatchesNaiveReference) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied head" : "own head");
    const Gpt2Model m = test::random_gpt2(test::tiny_gpt2_config(tied), 7);
    EXPECT_LT(
        relative_error(forward_all(m, kTokens), reference_logits(reference_from_model(m), kTokens)),
        1e-5);
  }
}

TEST(Gpt2Forward, DecodeWithCacheEqualsFullRecompute) {
  const LlamaModel m = llama_from_gpt2(test::random_gpt2(test::tiny_gpt2_config(), 11));
  const int64_t V = m.cfg.vocab_size;
  const std::vector<float> full = forward_all(m, kTokens);
  KVCache cache(m.cfg, int64_t(kTokens.size()));
  std::vector<float> last(static_cast<size_t>(V));
  llama_forward(m, std::span(kTokens).first(4), cache, nullptr, last.data());
  for (size_t t = 3;; ++t) {
    double err = 0, scale = 0;
    for (int64_t v = 0; v < V; ++v) {
      err = std::max(err, std::fabs(double(last[size_t(v)]) - full[t * size_t(V) + size_t(v)]));
      scale = std::max(scale, std::fabs(double(full[t * size_t(V) + size_t(v)])));
    }
    EXPECT_LT(err / scale, 1e-5) << "position " << t;
    if (t + 1 == kTokens.size()) break;
    llama_forward(m, std::span(kTokens).subspan(t + 1, 1), cache, nullptr, last.data());
  }
  EXPECT_EQ(cache.size(), int64_t(kTokens.size()));
}

TEST(Gpt2Forward, RefusesPositionsBeyondTheTable) {
  const LlamaModel m = llama_from_gpt2(test::random_gpt2(test::tiny_gpt2_config(), 2));
  KVCache cache(m.cfg, 64);  // 24 positions in the table
  const std::vector<int32_t> toks(25, 1);
  EXPECT_THROW(llama_forward(m, toks, cache, nullptr), Error);
  EXPECT_EQ(cache.size(), 0);
  const std::vector<int32_t> bad = {1, 41};
  EXPECT_THROW(llama_forward(m, bad, cache, nullptr), Error);
}

TEST(Gpt2Files, HfDirectoriesAndGgufGiveIdenticalLogits) {
  const fs::path dir = test::fresh_temp_dir();
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied head" : "own head");
    const Gpt2Model m = test::random_gpt2(test::tiny_gpt2_config(tied), 21);
    const std::vector<float> want = forward_all(m, kTokens);
    const std::string hf = (dir / "hf").string(), bare = (dir / "bare").string();
    const std::string gg = (dir / "m.gguf").string();
    save_gpt2_hf(m, hf);
    Gpt2HfOptions no_prefix;
    no_prefix.transformer_prefix = false;
    save_gpt2_hf(m, bare, no_prefix);
    save_gpt2_gguf(m, gg);

    // The HF file holds Conv1D weights [in, out] (hidden 24 != 16 tells them apart), and
    // transformers' reading of it gives the same logits as the loaded model.
    const ModelFile f = open_model_file(hf);
    EXPECT_EQ(f.find("transformer.h.0.mlp.c_fc.weight")->shape(), (Shape{16, 24}));
    EXPECT_EQ(f.find("transformer.h.1.mlp.c_proj.weight")->shape(), (Shape{24, 16}));
    EXPECT_EQ(f.find("lm_head.weight") == nullptr, tied);
    EXPECT_LT(
        relative_error(want, reference_logits(reference_from_hf(f, "transformer.", 4), kTokens)),
        1e-5);

    for (const std::string& path : {hf, bare, gg}) {
      SCOPED_TRACE(path);
      const LlamaModel back = load_gpt2(path);
      EXPECT_EQ(back.cfg.dim, 16);
      EXPECT_EQ(back.cfg.hidden_dim, 24);
      EXPECT_EQ(back.cfg.max_seq_len, 24);
      EXPECT_EQ(back.cfg.tie_embeddings, tied);
      EXPECT_EQ(back.parameter_count(), m.parameter_count());
      EXPECT_EQ(forward_all(back, kTokens), want);  // f32 all the way: bit for bit
    }
    // The GGUF file uses llama.cpp's names, weights [out, in].
    const ModelFile g = open_model_file(gg);
    EXPECT_EQ(g.architecture, "gpt2");
    EXPECT_EQ(g.find("blk.0.ffn_up.weight")->shape(), (Shape{24, 16}));
    EXPECT_EQ(g.find("blk.1.attn_qkv.weight")->shape(), (Shape{48, 16}));
    EXPECT_NE(g.find("position_embd.weight"), nullptr);
  }
}

TEST(Gpt2Files, QuantisedGgufStaysClose) {
  Gpt2Config c = test::tiny_gpt2_config();
  c.dim = 32, c.hidden_dim = 64, c.n_heads = 2;  // whole Q8_0 blocks per row
  const Gpt2Model m = test::random_gpt2(c, 4);
  const std::string gg = (test::fresh_temp_dir() / "q8.gguf").string();
  save_gpt2_gguf(m, gg, DType::Q8_0);
  EXPECT_EQ(open_model_file(gg).find("blk.0.attn_qkv.weight")->dtype(), DType::Q8_0);
  const LlamaModel back = load_gpt2(gg);
  EXPECT_LT(relative_error(forward_all(back, kTokens),
                           reference_logits(reference_from_model(m), kTokens)),
            0.05);
}

TEST(Gpt2Eval, UniformModelHasPerplexityEqualToVocab) {
  Gpt2Model m = test::random_gpt2(test::tiny_gpt2_config(), 5);
  // Zero every weight matrix and the embeddings that feed the tied head; keep the biases
  // and positions, so that activations are far from zero but every logit is exactly 0.
  for (auto& [name, t] : m.named_tensors())
    if (t->ndim() == 2 && name != "wpe.weight") *t = Tensor::zeros(DType::F32, t->shape(), name);
  std::vector<int32_t> toks;
  for (int i = 0; i < 60; ++i) toks.push_back(int32_t((i * 7 + 3) % 41));
  const LlamaModel decoder = llama_from_gpt2(m);
  const auto lm = causal_lm_view(decoder);
  const EvalResult r = evaluate(*lm, toks, {16, 8});
  EXPECT_EQ(r.scored, 59);
  EXPECT_NEAR(r.perplexity, 41.0, 41.0 * 1e-12);
}

TEST(Gpt2Eval, MatchesNllWorkedOutFromTheLogits) {
  const Gpt2Model m = test::random_gpt2(test::tiny_gpt2_config(), 9);
  const std::vector<float> logits = forward_all(m, kTokens);
  double nll = 0;
  const size_t V = size_t(m.cfg.vocab_size);
  for (size_t i = 1; i < kTokens.size(); ++i) {
    const float* row = logits.data() + (i - 1) * V;
    double z = 0;
    for (size_t v = 0; v < V; ++v) z += std::exp(double(row[v]));
    nll += std::log(z) - double(row[size_t(kTokens[i])]);
  }
  const LlamaModel decoder = llama_from_gpt2(m);
  const auto lm = causal_lm_view(decoder);
  const EvalResult r = evaluate(*lm, kTokens, {16, 16}, lm.get());
  EXPECT_NEAR(r.nll, nll / double(kTokens.size() - 1), 1e-6);
  EXPECT_NEAR(r.kl, 0.0, 1e-12);
  EXPECT_EQ(r.top1, 1.0);
  EXPECT_EQ(lm->architecture(), "gpt2");
  EXPECT_EQ(lm->context_length(), 24);
  // A window past the position table is an error, not garbage.
  const std::vector<int32_t> many(40, 2);
  EXPECT_THROW(evaluate(*lm, many, {32, 32}), Error);
}

TEST(Gpt2Errors, ConfigDisagreeingWithTensorsNamesFileAndKey) {
  const fs::path dir = test::fresh_temp_dir();
  const Gpt2Model m = test::random_gpt2(test::tiny_gpt2_config(), 3);
  const std::string hf = (dir / "hf").string();
  save_gpt2_hf(m, hf);
  EXPECT_EQ(model_family(open_model_file(hf)), ModelFamily::Gpt2);
  EXPECT_NO_THROW(load_causal_lm(open_model_file(hf)));

  rewrite_config(hf, [](nlohmann::json& j) { j["n_embd"] = 20; });
  expect_load_error(hf, {hf, "transformer.wte.weight", "[41, 16]", "[41, 20]", "n_embd"});

  save_gpt2_hf(m, hf);
  rewrite_config(hf, [](nlohmann::json& j) { j["n_layer"] = 3; });
  expect_load_error(hf, {hf, "missing tensor 'transformer.h.2.ln_1.weight'", "n_layer = 3"});
  rewrite_config(hf, [](nlohmann::json& j) { j["n_layer"] = 1; });
  expect_load_error(hf, {hf, "transformer.h.1.ln_1.weight", "beyond", "n_layer = 1"});

  rewrite_config(hf, [](nlohmann::json& j) { j["n_layer"] = 2, j["n_inner"] = 32; });
  expect_load_error(hf, {hf, "transformer.h.0.mlp.c_fc.weight", "[16, 32]", "n_inner"});

  rewrite_config(
      hf, [](nlohmann::json& j) { j["n_inner"] = nullptr, j["activation_function"] = "relu"; });
  expect_load_error(hf, {hf + "/config.json", "activation_function", "relu", "not supported"});

  rewrite_config(hf,
                 [](nlohmann::json& j) { j["activation_function"] = "gelu_new", j["n_head"] = 3; });
  expect_load_error(hf, {hf + "/config.json", "n_embd", "n_head"});

  rewrite_config(hf, [](nlohmann::json& j) { j["n_head"] = 4, j["n_embd"] = int64_t(1) << 62; });
  expect_load_error(hf, {hf + "/config.json", "n_embd", "implausibly large"});

  rewrite_config(
      hf, [](nlohmann::json& j) { j["n_embd"] = 16, j.erase("n_positions"), j.erase("n_ctx"); });
  expect_load_error(hf, {hf + "/config.json", "missing key 'n_ctx'"});
}

TEST(Gpt2Errors, GgufKeysAndTensorsAreChecked) {
  const fs::path dir = test::fresh_temp_dir();
  const std::string gg = (dir / "m.gguf").string(), bad = (dir / "bad.gguf").string();
  save_gpt2_gguf(test::random_gpt2(test::tiny_gpt2_config(), 3), gg);
  const GGUFFile g = read_gguf(gg);
  auto rewrite = [&](const std::string& key, std::optional<GGUFValue> value) {
    std::vector<GGUFKeyValue> kvs;
    for (const GGUFKeyValue& kv : g.kvs)
      if (kv.key != key) kvs.push_back(kv);
    if (value) kvs.push_back({key, *value});
    write_gguf(bad, kvs, g.tensors);
  };
  rewrite("gpt2.block_count", GGUFValue(uint32_t(3)));
  expect_load_error(bad, {bad, "missing tensor 'blk.2.attn_norm.weight'", "gpt2.block_count = 3"});
  rewrite("gpt2.embedding_length", GGUFValue(uint32_t(8)));
  expect_load_error(bad, {bad, "token_embd.weight", "gpt2.embedding_length"});
  rewrite("gpt2.context_length", std::nullopt);
  expect_load_error(bad, {bad, "missing key 'gpt2.context_length'"});
}

// GPT-2 runs and compresses; what trains (recovery, adapters) needs llama's block.
TEST(Gpt2Errors, OnlyLlamaFamilyModelsTrain) {
  const fs::path dir = test::fresh_temp_dir();
  const std::string hf = (dir / "hf").string();
  save_gpt2_hf(test::random_gpt2(test::tiny_gpt2_config(), 3), hf);
  const ModelFile f = open_model_file(hf);
  try {
    require_llama_family(f, "recovery");
    FAIL() << "a GPT-2 model passed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("recovery needs llama's block"), std::string::npos);
    EXPECT_EQ(e.file(), hf);
  }
  const std::string ll = (dir / "llama").string();
  save_llama_hf(test::random_llama(test::tiny_config(), 1), ll);
  EXPECT_EQ(model_family(open_model_file(ll)), ModelFamily::Llama);
  EXPECT_NO_THROW(require_llama_family(open_model_file(ll), "recovery"));
  EXPECT_THROW(require_trainable(load_llama(f).cfg), Error);
  EXPECT_NO_THROW(require_trainable(load_llama(ll).cfg));
}

// Calibration walks GPT-2's block: every group of linears observes exactly the inputs the
// naive GPT-2 forward computes (ln_1, attention, ln_2, GELU), block after block.
TEST(Gpt2Compress, CalibrationSeesTheGpt2BlocksInputs) {
  const Gpt2Model g = test::random_gpt2(test::tiny_gpt2_config(false), 13);
  LlamaModel m = llama_from_gpt2(g);
  std::vector<BlockInputs> want;
  reference_logits(reference_from_model(g), kTokens, &want);
  std::map<std::pair<int64_t, int>, std::vector<float>> seen;  // (layer, group) -> rows
  CalibrationHooks hooks;
  hooks.observe = [&](const LinearGroup& grp, const float* x, int64_t rows) {
    const int k = grp.input == kActInt8Qkv      ? 0
                  : grp.input == kActInt8O      ? 1
                  : grp.input == kActInt8GateUp ? 2
                                                : 3;
    seen[{grp.layer, k}].assign(x, x + rows * grp.in_features);
  };
  sequential_calibrate(m, {kTokens}, hooks);
  ASSERT_EQ(seen.size(), 8u);  // 2 blocks x 4 groups: no gate group of its own
  for (const auto& [key, got] : seen) {
    const std::vector<Vec>& ref = want[size_t(key.first)][size_t(key.second)];
    const size_t width = ref[0].size();
    ASSERT_EQ(got.size(), ref.size() * width) << key.first << "/" << key.second;
    double err = 0, scale = 0;
    for (size_t t = 0; t < ref.size(); ++t)
      for (size_t i = 0; i < width; ++i) {
        err = std::max(err, std::fabs(double(got[t * width + i]) - ref[t][i]));
        scale = std::max(scale, std::fabs(ref[t][i]));
      }
    EXPECT_LT(err / scale, 1e-5) << "layer " << key.first << " group " << key.second;
  }
}

// A compressed GPT-2 is written as a GPT-2 (GPT2LMHeadModel, c_attn fused, Conv1D weights
// [in, out]) whose logits are the compressed model's; the linears hold RTN's codes, and
// the norms, biases and positions what they were.
TEST(Gpt2Compress, CompressedModelIsWrittenBackAsAGpt2) {
  const fs::path dir = test::fresh_temp_dir();
  const Gpt2Model g = test::random_gpt2(test::tiny_gpt2_config(), 17);
  save_gpt2_hf(g, (dir / "src").string());
  const LlamaModel src = load_gpt2((dir / "src").string());
  const Recipe r =
      parse_recipe("stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 0\n", "r");
  std::vector<int32_t> calib;
  for (int i = 0; i < 96; ++i) calib.push_back(int32_t((i * 11 + 5) % 41));
  CompressOptions co;
  co.calib_windows = 4, co.calib_window = 24;
  const CompressionResult c = compress_llama(src, r, calib, co);
  ASSERT_EQ(c.layers.size(), 2u * 6u);  // q, k, v, o, up, down per block
  save_llama_hf(c.model, (dir / "out").string());

  const ModelFile f = open_model_file((dir / "out").string());
  EXPECT_EQ(f.architecture, "gpt2");
  const auto config = nlohmann::json::parse(test::read_bytes(dir / "out" / "config.json"));
  EXPECT_EQ(config["architectures"][0], "GPT2LMHeadModel");
  EXPECT_EQ(config["n_inner"], 24);
  EXPECT_EQ(f.find("transformer.h.0.attn.c_attn.weight")->shape(), (Shape{16, 48}));
  EXPECT_EQ(f.find("transformer.h.1.mlp.c_fc.weight")->shape(), (Shape{16, 24}));
  EXPECT_EQ(f.find("transformer.h.1.attn.c_attn.bias")->shape(), (Shape{48}));
  EXPECT_EQ(f.find("model.layers.0.self_attn.q_proj.weight"), nullptr);
  const LlamaModel back = load_gpt2(f);
  EXPECT_EQ(forward_all(back, kTokens), forward_all(c.model, kTokens));
  auto values = [](const LlamaModel& model, const std::string& name) {
    for (const auto& [n, t] : model.named_tensors())
      if (n == name) return t->to_f32();
    ADD_FAILURE() << "no tensor " << name;
    return std::vector<float>{};
  };
  // Every linear decodes to its codes (the grid changed them), the rest is the source's.
  for (const CompressedLayer& l : c.layers) {
    const std::string& n = l.tensor.name;
    EXPECT_EQ(values(back, n), l.tensor.dequantize().to_f32()) << n;
    EXPECT_NE(values(back, n), values(src, n)) << n;
  }
  for (const char* n :
       {"model.layers.1.self_attn.k_proj.bias", "model.layers.0.input_layernorm.bias",
        "model.embed_positions.weight", "model.norm.bias"})
    EXPECT_EQ(values(back, n), values(src, n)) << n;
}

// SmoothQuant folds its scales into LayerNorm's bias as well as its weight (the reference's
// smooth_ln_fcs divides both), so the smoothed block computes what it did before.
TEST(Gpt2Compress, SmoothingFoldsIntoTheLayerNormBias) {
  const LlamaModel m = llama_from_gpt2(test::random_gpt2(test::tiny_gpt2_config(), 19));
  LlamaModel s = m;
  LlamaLayer& L = s.layers[0];
  L.attn_norm = L.attn_norm.f32_copy(), L.attn_norm_b = L.attn_norm_b.f32_copy();
  std::vector<Tensor*> ws;
  for (Tensor* w : {&L.wq, &L.wk, &L.wv}) *w = w->f32_copy(), ws.push_back(w);
  std::vector<float> scale(16);
  for (size_t j = 0; j < scale.size(); ++j) scale[j] = 0.5f + 0.1f * float(j);
  fold_smoothing(L.attn_norm, ws, scale, &L.attn_norm_b);
  const std::vector<float> a = forward_all(m, kTokens), b = forward_all(s, kTokens);
  double err = 0, mag = 0;
  for (size_t i = 0; i < a.size(); ++i)
    err = std::max(err, double(std::fabs(a[i] - b[i]))),
    mag = std::max(mag, double(std::fabs(a[i])));
  EXPECT_LT(err / mag, 1e-5);
  fold_smoothing(L.attn_norm, ws, scale);  // the weight alone: no longer the same function
  const std::vector<float> c = forward_all(s, kTokens);
  double off = 0;
  for (size_t i = 0; i < a.size(); ++i) off = std::max(off, double(std::fabs(a[i] - c[i])));
  EXPECT_GT(off / mag, 1e-3);
}

// Every registered algorithm, with its defaults, compresses a GPT-2 or (the structured
// stages, which reshape llama's block) refuses it before touching a weight.
TEST(Gpt2Compress, EveryAlgorithmCompressesItOrRefusesBeforeStarting) {
  Gpt2Config gc = test::tiny_gpt2_config();
  gc.dim = 128, gc.hidden_dim = 256, gc.n_heads = 4;  // whole groups of 128
  const LlamaModel m = llama_from_gpt2(test::random_gpt2(gc, 23));
  std::vector<int32_t> calib;
  for (int i = 0; i < 96; ++i) calib.push_back(int32_t((i * 7 + 3) % 41));
  CompressOptions co;
  co.calib_windows = 4, co.calib_window = 24;
  for (const CompressAlgorithm& a : compress_algorithms()) {
    SCOPED_TRACE(a.name);
    const Recipe r = parse_recipe("stages:\n  - algorithm: " + a.name + "\n", "r.yaml");
    if (a.reshape && a.name != "channels") {  // heads: GPT-2's files cannot hold fewer
      try {
        compress_llama(m, r, calib, co);
        ADD_FAILURE() << "a structured stage ran on a GPT-2";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("a gpt2 block is not supported"), std::string::npos)
            << e.what();
      }
      continue;
    }
    const CompressionResult c = compress_llama(m, r, calib, co);
    EXPECT_FALSE(c.layers.empty());
    for (float v : forward_all(c.model, kTokens)) ASSERT_TRUE(std::isfinite(v));
  }
}

// MLP channels leave a GPT-2 (its up_proj bias sliced with the rows, the compensation in its
// existing down_proj bias): the smaller model computes what the big one computes with those
// c_proj columns zeroed and the new bias, and is written and read back as a GPT-2 (n_inner).
TEST(Gpt2Compress, ChannelsLeaveAGpt2ThatIsWrittenAsOne) {
  Gpt2Config gc = test::tiny_gpt2_config();
  gc.hidden_dim = 48;
  const LlamaModel m = llama_from_gpt2(test::random_gpt2(gc, 31));
  std::vector<int32_t> calib;
  for (int i = 0; i < 120; ++i) calib.push_back(int32_t((i * 11 + 5) % 41));
  const auto windows = calibration_windows(calib, 5, 24);
  StructuredStageOptions o;
  o.heads = false, o.fraction = 0.25;
  LlamaModel small = m;
  for (auto& [n, t] : small.named_tensors()) *t = t->f32_copy();
  const auto plan = run_structured_stage(small, o, windows);
  EXPECT_EQ(small.cfg.hidden_dim, 36);
  EXPECT_EQ(small.layers[0].b_up.numel(), 36);
  LlamaModel masked = m;
  for (auto& [n, t] : masked.named_tensors()) *t = t->f32_copy();
  for (size_t l = 0; l < plan.size(); ++l) {
    Tensor& w = masked.layers[l].w_down;
    for (int64_t j : plan[l])
      for (int64_t r = 0; r < w.dim(0); ++r) w.mutable_as<float>()[r * w.dim(1) + j] = 0;
    masked.layers[l].b_down = small.layers[l].b_down;
  }
  const auto got = forward_all(small, kTokens), want = forward_all(masked, kTokens);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4) << i;
  const fs::path dir = test::fresh_temp_dir();
  save_llama_hf(small, (dir / "hf").string());
  const auto config = nlohmann::json::parse(std::ifstream(dir / "hf" / "config.json"));
  EXPECT_EQ(config["model_type"], "gpt2");
  EXPECT_EQ(config["n_inner"], 36);
  EXPECT_EQ(forward_all(load_llama((dir / "hf").string()), kTokens), got);
}

// HF's Conv1D weights stay views of the file, transposed as they are read: whole rows and
// ranges that start or end inside a row decode to the in-memory model's values.
TEST(Gpt2Files, Conv1dWeightsAreTransposedViewsOfTheFile) {
  const fs::path dir = test::fresh_temp_dir();
  const Gpt2Model g = test::random_gpt2(test::tiny_gpt2_config(), 29);
  save_gpt2_hf(g, (dir / "hf").string());
  const LlamaModel loaded = load_gpt2((dir / "hf").string());
  const LlamaModel want = llama_from_gpt2(g);
  for (size_t l = 0; l < 2; ++l)
    for (Tensor LlamaLayer::*w : {&LlamaLayer::wq, &LlamaLayer::wv, &LlamaLayer::wo,
                                  &LlamaLayer::w_up, &LlamaLayer::w_down}) {
      const Tensor& a = loaded.layers[l].*w;
      const std::vector<float> b = (want.layers[l].*w).to_f32();
      EXPECT_FALSE(a.writable()) << a.name();  // no copy of the weight
      EXPECT_EQ(a.shape(), (want.layers[l].*w).shape()) << a.name();
      EXPECT_EQ(a.to_f32(), b) << a.name();
      for (const auto& [first, count] : {std::pair{size_t(5), size_t(37)},
                                         {size_t(16), size_t(16)},
                                         {size_t(3), size_t(1)},
                                         {b.size() - 20, size_t(20)}}) {
        std::vector<float> part(count);
        a.to_f32(part.data(), first, count);
        EXPECT_TRUE(std::equal(part.begin(), part.end(), b.begin() + long(first)))
            << a.name() << " [" << first << ", +" << count << ")";
      }
    }
}

// Products with a Conv1D view: in place for a few rows (decode) and through transposed
// tiles for many, f32 and bf16 storage, with a bias and accumulating, equal to the product
// with the view's values written out.
TEST(Gpt2Files, Conv1dViewsMultiplyLikeTheirValues) {
  std::mt19937 rng(31);
  std::normal_distribution<float> nd;
  const int64_t in = 24, width = 40, first = 8, rows = 24;
  std::vector<float> s(static_cast<size_t>(in * width)), bias(static_cast<size_t>(rows));
  for (float& v : s) v = nd(rng);
  for (float& v : bias) v = nd(rng);
  for (DType dt : {DType::F32, DType::BF16}) {
    Tensor stored = Tensor::zeros(dt, {in, width}, "c_attn");
    from_f32(dt, s.data(), stored.mutable_data(), s.size());
    const Tensor view = conv1d_rows(stored, first, rows, "q");
    const std::vector<float> w = view.to_f32();
    for (int64_t m : {1, 3, 20})
      for (bool acc : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " m " + std::to_string(m) + (acc ? " +=" : ""));
        std::vector<float> x(static_cast<size_t>(m * in)), got(static_cast<size_t>(m * rows), 0.5f);
        std::vector<float> want = got;
        for (float& v : x) v = nd(rng);
        matmul_wt_stored(x.data(), view, got.data(), m, bias.data(), acc);
        for (int64_t t = 0; t < m; ++t)
          for (int64_t o = 0; o < rows; ++o) {
            double d = bias[size_t(o)];
            for (int64_t i = 0; i < in; ++i)
              d += double(x[size_t(t * in + i)]) * w[size_t(o * in + i)];
            want[size_t(t * rows + o)] = float(acc ? want[size_t(t * rows + o)] + d : d);
          }
        for (size_t k = 0; k < got.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-4) << k;
      }
  }
}
