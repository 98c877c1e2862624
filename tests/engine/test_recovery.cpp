// Recovery fine-tuning: the distillation loss and its gradient, LoRA's merge and adapter
// gradients against finite differences of the whole model's loss, PEFT's file layout, and
// recovery of a compressed demo model end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "engine/compress/compress_llama.h"
#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "engine/kernels/gemm.h"
#include "engine/model/llama_tensors.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/recipe/recipe.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/lora.h"
#include "engine/train/lora_merge.h"
#include "engine/train/qat.h"
#include "engine/train/recovery.h"
#include "engine/train/train_ops.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;

namespace {

std::vector<float> softmax(const std::vector<float>& z, int64_t rows, int64_t V) {
  std::vector<float> p(z.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -1e30, sum = 0;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, double(z[size_t(r * V + j)]));
    for (int64_t j = 0; j < V; ++j) sum += std::exp(double(z[size_t(r * V + j)]) - mx);
    for (int64_t j = 0; j < V; ++j)
      p[size_t(r * V + j)] = float(std::exp(double(z[size_t(r * V + j)]) - mx) / sum);
  }
  return p;
}

// Σ_r Σ_j q log(q / p) in double, p = softmax(z).
double naive_kl(const std::vector<float>& z, const std::vector<float>& q, int64_t rows, int64_t V) {
  const std::vector<float> p = softmax(z, rows, V);
  double kl = 0;
  for (size_t i = 0; i < q.size(); ++i)
    if (q[i] > 0) kl += double(q[i]) * (std::log(double(q[i])) - std::log(double(p[i])));
  return kl;
}

}  // namespace

TEST(KlDivergence, MatchesTheDefinitionAndItsGradient) {
  const int64_t rows = 3, V = 7;
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 2.0f);
  std::vector<float> z(size_t(rows * V)), tz(z.size());
  for (float& x : z) x = n(rng);
  for (float& x : tz) x = n(rng);
  std::vector<float> q = softmax(tz, rows, V);
  q[3] = 0;  // a zero teacher probability contributes nothing (0·log 0 = 0)
  double rest = 0;
  for (int64_t j = 0; j < V; ++j) rest += q[size_t(j)];
  for (int64_t j = 0; j < V; ++j) q[size_t(j)] = float(q[size_t(j)] / rest);
  std::vector<float> probs = z;
  const double kl = kl_divergence_forward(probs.data(), q.data(), rows, V);
  EXPECT_NEAR(kl, naive_kl(z, q, rows, V), 1e-5 * kl);
  EXPECT_GT(kl, 0.1);
  const std::vector<float> p = softmax(z, rows, V);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(probs[i], p[i], 1e-6);

  std::vector<float> d(z.size());
  kl_divergence_backward(probs.data(), q.data(), rows, V, 0.5, d.data());
  for (size_t i = 0; i < z.size(); ++i) {
    std::vector<float> up = z, down = z;
    up[i] += 1e-2f, down[i] -= 1e-2f;
    const double fd = 0.5 * (naive_kl(up, q, rows, V) - naive_kl(down, q, rows, V)) / 2e-2;
    EXPECT_NEAR(d[i], fd, 1e-4 + 1e-3 * std::abs(fd)) << i;
  }
}

TEST(Lora, ScaleIsAlphaOverRankOrItsRoot) {
  LoraAdapters a;
  a.rank = 16, a.alpha = 32;
  EXPECT_DOUBLE_EQ(a.scale(), 2.0);
  a.scaling = LoraScaling::Rora;
  EXPECT_DOUBLE_EQ(a.scale(), 8.0);
  EXPECT_EQ(parse_lora_scaling("rora", "x"), LoraScaling::Rora);
  EXPECT_THROW(parse_lora_scaling("dora", "x"), Error);
}

TEST(Lora, StartsAtTheFrozenModelAndMergesWPlusScaledBA) {
  const LlamaModel m = test::random_llama(test::tiny_config(), 3);
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  LoraAdapters ad = init_lora(m, {q}, 4, 8, LoraScaling::Lora, 1);
  ASSERT_EQ(ad.adapters.size(), 1u);
  LoraAdapter& a = ad.adapters[0];
  const Tensor& w = m.layers[0].wq;
  const double bound = 1.0 / std::sqrt(double(w.dim(1)));
  for (int64_t i = 0; i < a.a.numel(); ++i) EXPECT_LE(std::abs(a.a.as<float>()[i]), bound);
  Tensor merged = merge_lora(w, a, ad.scale());  // B = 0: the frozen weight
  for (int64_t i = 0; i < w.numel(); ++i) EXPECT_EQ(merged.as<float>()[i], w.as<float>()[i]);

  std::mt19937 rng(2);
  std::normal_distribution<float> n;
  for (int64_t i = 0; i < a.b.numel(); ++i) a.b.mutable_as<float>()[i] = n(rng);
  merged = merge_lora(w, a, ad.scale());
  const int64_t rows = w.dim(0), cols = w.dim(1), r = 4;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double ba = 0;
      for (int64_t k = 0; k < r; ++k)
        ba += double(a.b.as<float>()[i * r + k]) * a.a.as<float>()[k * cols + j];
      EXPECT_NEAR(merged.as<float>()[i * cols + j], w.as<float>()[i * cols + j] + 2.0 * ba, 1e-5);
    }
  EXPECT_THROW(init_lora(m, {q}, 1000, 8, LoraScaling::Lora, 1), Error);  // rank > min(out, in)
  EXPECT_THROW(init_lora(m, {"model.layers.9.mlp.up_proj.weight"}, 2, 8, LoraScaling::Lora, 1),
               Error);
}

// The adapters' gradients against central differences of the whole model's loss in A and
// B, for the next-token cross-entropy and for the distillation KL: formed from the full
// weight gradient (lora_gradients) and from the frozen backward's x and dy
// (lora_gradients_from, what recovery runs), which must agree; tolerances as
// BackwardModel.MatchesFiniteDifferences argues.
TEST(Lora, AdapterGradientsMatchFiniteDifferences) {
  const LlamaConfig cfg = test::tiny_config();
  const LlamaModel base = test::random_llama(cfg, 21);
  const LlamaModel teacher = test::random_llama(cfg, 22);
  const std::vector<std::string> names = {"model.layers.0.self_attn.q_proj.weight",
                                          "model.layers.1.self_attn.o_proj.weight",
                                          "model.layers.1.mlp.down_proj.weight"};
  const int64_t B = 2, T = 6, V = cfg.vocab_size;
  const auto windows = test::random_tokens(size_t(B * (T + 1)), V, 23);
  std::vector<float> soft(size_t(B * T * V));
  for (int64_t b = 0; b < B; ++b) {
    KVCache cache(cfg, T);
    llama_forward(teacher,
                  std::span<const int32_t>(windows).subspan(size_t(b * (T + 1)), size_t(T)), cache,
                  soft.data() + b * T * V);
  }
  soft = softmax(soft, B * T, V);

  for (const bool distill : {false, true}) {
    LlamaModel m = clone_model(base);
    LoraAdapters ad = init_lora(m, names, 3, 6, LoraScaling::Rora, 4);
    std::mt19937 rng(7);
    std::normal_distribution<float> n(0.0f, 0.5f);
    for (LoraAdapter& a : ad.adapters)
      for (int64_t i = 0; i < a.b.numel(); ++i) a.b.mutable_as<float>()[i] = n(rng);
    std::vector<Tensor> frozen;
    std::vector<Tensor*> targets;
    for (const std::string& name : names)
      for (auto& [nm, t] : m.named_tensors())
        if (nm == name) targets.push_back(t), frozen.push_back(t->f32_copy());
    auto loss = [&] {
      for (size_t i = 0; i < names.size(); ++i)
        *targets[i] = merge_lora(frozen[i], ad.adapters[i], ad.scale());
      LlamaActivations act;
      return llama_train_forward(m, windows, B, T, act, nullptr, distill ? soft.data() : nullptr);
    };
    loss();
    LlamaActivations act;
    llama_train_forward(m, windows, B, T, act, nullptr, distill ? soft.data() : nullptr);
    LlamaModel g = zeros_like(m);
    llama_train_backward(m, act, 1.0, g);
    size_t large = 0, checked = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      LoraAdapter& a = ad.adapters[i];
      Tensor da = Tensor::zeros(DType::F32, a.a.shape()),
             db = Tensor::zeros(DType::F32, a.b.shape());
      const Tensor* dw = nullptr;
      for (const auto& [nm, t] : g.named_tensors())
        if (nm == names[i]) dw = t;
      lora_gradients(a, ad.scale(), *dw, da, db);
      // The frozen backward's rank-sized path gives the same gradients (what recovery runs).
      Tensor fa = Tensor::zeros(DType::F32, a.a.shape()),
             fb = Tensor::zeros(DType::F32, a.b.shape());
      int64_t seen = 0;
      llama_frozen_backward(
          m, act, 1.0,
          [&](int64_t layer, LlamaLinear which, const float* x, const float* dy, int64_t rows) {
            const bool mine = (i == 0 && layer == 0 && which == LlamaLinear::Q) ||
                              (i == 1 && layer == 1 && which == LlamaLinear::O) ||
                              (i == 2 && layer == 1 && which == LlamaLinear::Down);
            if (mine) lora_gradients_from(a, ad.scale(), x, dy, rows, fa, fb), ++seen;
          });
      EXPECT_EQ(seen, 1);
      for (auto [ref, got] : {std::pair{&da, &fa}, std::pair{&db, &fb}})
        for (int64_t j = 0; j < ref->numel(); ++j)
          EXPECT_NEAR(got->as<float>()[j], ref->as<float>()[j],
                      1e-6 + 1e-4 * std::abs(ref->as<float>()[j]))
              << names[i] << " " << j;
      for (auto [param, grad] : {std::pair{&a.a, &fa}, std::pair{&a.b, &fb}}) {
        std::uniform_int_distribution<int64_t> pick(0, param->numel() - 1);
        for (int rep = 0; rep < 6; ++rep) {
          const int64_t j = pick(rng);
          float* p = param->mutable_as<float>();
          const float keep = p[j], eps = 2e-2f;
          p[j] = keep + eps;
          const double up = loss();
          p[j] = keep - eps;
          const double down = loss();
          p[j] = keep;
          const double fd = (up - down) / (2.0 * eps);
          ++checked;
          if (std::abs(fd) > 3e-4) ++large;
          EXPECT_NEAR(grad->as<float>()[j], fd, 1e-4 + 0.02 * std::abs(fd))
              << (distill ? "kl " : "ce ") << names[i] << (param == &a.a ? " A[" : " B[") << j
              << "]";
        }
      }
    }
    // Most checked gradients are over 3× the absolute tolerance, so a wrong term would miss
    // by a sizeable part of them.
    EXPECT_GT(2 * large, checked) << large << " of " << checked << " gradients above 3e-4";
  }
}

TEST(LoraPeft, WritesPeftNamesAndReadsThemBack) {
  const std::string dir = test::fresh_temp_dir().string();
  const LlamaModel m = test::random_llama(test::tiny_config(), 3);
  const std::vector<std::string> names = {"model.layers.0.self_attn.q_proj.weight",
                                          "model.layers.1.mlp.up_proj.weight"};
  LoraAdapters ad = init_lora(m, names, 2, 4, LoraScaling::Rora, 9);
  ad.adapters[1].b.mutable_as<float>()[3] = 0.25f;
  save_lora_peft(dir, ad, "demo");
  const SafetensorsFile f = read_safetensors(dir + "/adapter_model.safetensors");
  std::set<std::string> tensor_names;
  for (const Tensor& t : f.tensors) tensor_names.insert(t.name());
  EXPECT_TRUE(tensor_names.count("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_TRUE(tensor_names.count("base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"));
  std::ifstream in(dir + "/adapter_config.json");
  const nlohmann::json cfg = nlohmann::json::parse(in);
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 2);
  EXPECT_EQ(cfg["lora_alpha"], 4.0);
  EXPECT_EQ(cfg["use_rslora"], true);
  EXPECT_EQ(cfg["target_modules"], nlohmann::json({"q_proj", "up_proj"}));

  const LoraAdapters back = load_lora_peft(dir);
  EXPECT_EQ(back.rank, 2);
  EXPECT_EQ(back.scaling, LoraScaling::Rora);
  EXPECT_DOUBLE_EQ(back.scale(), ad.scale());
  ASSERT_EQ(back.adapters.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back.adapters[i].name, ad.adapters[i].name);
    for (int64_t j = 0; j < ad.adapters[i].b.numel(); ++j)
      EXPECT_EQ(back.adapters[i].b.as<float>()[j], ad.adapters[i].b.as<float>()[j]);
    for (int64_t j = 0; j < ad.adapters[i].a.numel(); ++j)
      EXPECT_EQ(back.adapters[i].a.as<float>()[j], ad.adapters[i].a.as<float>()[j]);
  }
}

TEST(LoraPeft, RefusesWhatItCannotApply) {
  const std::string dir = test::fresh_temp_dir().string();
  const LlamaModel m = test::random_llama(test::tiny_config(), 3);
  LoraAdapters ad =
      init_lora(m, {"model.layers.0.self_attn.q_proj.weight"}, 2, 4, LoraScaling::Lora, 9);
  save_lora_peft(dir, ad);
  // Only the A half of the module.
  const SafetensorsFile f = read_safetensors(dir + "/adapter_model.safetensors");
  std::vector<Tensor> only_a;
  for (const Tensor& t : f.tensors)
    if (t.name().find("lora_A") != std::string::npos)
      only_a.push_back(t.f32_copy()), only_a.back().set_name(t.name());
  write_safetensors(dir + "/adapter_model.safetensors", only_a);
  try {
    load_lora_peft(dir);
    FAIL() << "a module without lora_B was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("lora_B"), std::string::npos) << e.what();
  }
  std::ofstream(dir + "/adapter_config.json")
      << R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "use_dora": true})";
  EXPECT_THROW(load_lora_peft(dir), Error);
  std::ofstream(dir + "/adapter_config.json") << "{";
  EXPECT_THROW(load_lora_peft(dir), Error);
}

// The demo model quantised to 3 bits by RTN, then recovered by distillation from the
// uncompressed model: the held-out KL must fall well below where it starts.
TEST(Recovery, DistillationWinsBackHeldOutKlOnTheDemoModel) {
  const std::string dir = std::string(MCW_SOURCE_DIR) + "/assets/models/fortunes-1m";
  const ModelFile file = open_model_file(dir);
  const LlamaModel base = load_llama(file);
  const auto tok = load_tokenizer(file);
  auto read = [](const std::string& p) { return test::read_bytes(p); };
  const std::vector<int32_t> train = tok->encode(read(dir + "/calib.txt").substr(0, 40000), false);
  const std::vector<int32_t> held_out =
      tok->encode(read(dir + "/eval.txt").substr(0, 20000), false);
  const CompressionResult rtn = compress_llama(
      base,
      parse_recipe("stages:\n  - algorithm: rtn\n    bits: 2\n    group_size: 64\n", "w2.yaml"), {},
      {});

  RecoveryOptions o;
  o.steps = 24, o.batch = 4, o.seq_len = 64, o.rank = 4, o.alpha = 8, o.lr = 3e-3, o.warmup = 2;
  o.eval_every = 0, o.eval_windows = 6;
  std::vector<RecoveryStep> seen;
  const RecoveryResult r =
      recover_lora(rtn.model, {}, &base, block_linear_names(rtn.model), train, held_out, o, {},
                   nullptr, [&](const RecoveryStep& s) { seen.push_back(s); });
  ASSERT_EQ(r.history.size(), 25u);
  EXPECT_EQ(seen.size(), 25u);
  ASSERT_TRUE(r.history.front().eval_kl && r.history.back().eval_kl);
  EXPECT_FALSE(r.history[5].eval_kl);  // eval_every 0: before and after only
  const double before = *r.history.front().eval_kl, after = *r.history.back().eval_kl;
  RecordProperty("kl_before", std::to_string(before));
  RecordProperty("kl_after", std::to_string(after));
  EXPECT_GT(before, 0.05);
  EXPECT_LT(after, 0.8 * before);
  EXPECT_LT(*r.history.back().eval_loss, *r.history.front().eval_loss);
  EXPECT_EQ(r.adapters.adapters.size(), size_t(7 * base.cfg.n_layers));
}

TEST(Recovery, RefusesBadOptionsAndCancels) {
  const LlamaModel m = test::random_llama(test::tiny_config(), 3);
  const auto text = test::random_tokens(400, m.cfg.vocab_size, 1);
  RecoveryOptions o;
  o.steps = 5, o.batch = 2, o.seq_len = 16, o.rank = 2;
  o.steps = 0;
  EXPECT_THROW(recover_lora(m, {}, nullptr, block_linear_names(m), text, {}, o), Error);
  o.steps = 5;
  EXPECT_THROW(
      recover_lora(m, {}, nullptr, block_linear_names(m), std::span(text).first(10), {}, o),
      Error);
  LlamaConfig other = test::tiny_config();
  other.vocab_size = 41;
  const LlamaModel wrong_vocab = test::random_llama(other, 4);
  EXPECT_THROW(recover_lora(m, {}, &wrong_vocab, block_linear_names(m), text, {}, o), Error);

  CancelToken cancel;
  int steps = 0;
  EXPECT_THROW(recover_lora(m, {}, nullptr, block_linear_names(m), text, {}, o, {}, &cancel,
                            [&](const RecoveryStep& s) {
                              if (s.step == 2) cancel.cancel();
                              ++steps;
                            }),
               Cancelled);
  EXPECT_EQ(steps, 3);  // the evaluation before step 1, steps 1 and 2
}

namespace {

Tensor plus(const Tensor& w, float delta, int64_t every) {
  std::vector<float> v = w.to_f32();
  for (size_t i = 0; i < v.size(); i += size_t(every)) v[i] += delta;
  return Tensor::from_f32(v, w.shape());
}

}  // namespace

// Re-coding a merged weight keeps the layer's grid: with no update it gives back the layer
// exactly; an update of grid steps survives (added error well under 1) with the scales
// unchanged; a sparsity mask stays and pruned weights stay zero; low rank is refused.
TEST(LoraMerge, RecodesInTheLayersOwnScheme) {
  std::mt19937 rng(3);
  const Tensor w = test::random_tensor({16, 64}, rng, 0.5f);
  RtnOptions o;
  o.bits = 3, o.group_size = 32;
  const CompressedTensor q = quantize_rtn(w.as<float>(), 16, 64, o, nullptr, nullptr, "q");
  const Tensor wq = q.dequantize();
  const RecodedLayer same = recode_merged(q, wq, wq);
  EXPECT_EQ(same.tensor.codes, q.codes);
  EXPECT_EQ(same.tensor.scales, q.scales);
  EXPECT_EQ(same.added_error, 0.0);
  EXPECT_EQ(same.tensor.describe(), q.describe());

  const Tensor big = plus(wq, 0.8f, 3);  // an update of about two grid steps
  const RecodedLayer moved = recode_merged(q, wq, big);
  EXPECT_LT(moved.added_error, 0.5);
  EXPECT_NE(moved.tensor.codes, q.codes);
  EXPECT_EQ(moved.tensor.scales, q.scales);
  EXPECT_EQ(moved.tensor.zeros, q.zeros);

  std::vector<float> pruned = w.to_f32();
  std::vector<uint8_t> keep(pruned.size());
  for (size_t i = 0; i < keep.size(); ++i) keep[i] = i % 2, pruned[i] = keep[i] ? pruned[i] : 0.0f;
  CompressedTensor sparse = dense_tensor(Tensor::from_f32(pruned, {16, 64}), "s");
  sparse.mask = mask_from_values(pruned.data(), pruned.size());
  const Tensor ws = sparse.dequantize();
  const RecodedLayer s = recode_merged(sparse, ws, plus(ws, 0.1f, 1));
  EXPECT_EQ(s.tensor.mask, sparse.mask);
  const Tensor back = s.tensor.dequantize();
  for (int64_t i = 0; i < back.numel(); ++i)
    EXPECT_EQ(back.as<float>()[i], keep[size_t(i)] ? ws.as<float>()[i] + 0.1f : 0.0f) << i;
  EXPECT_NEAR(s.added_error, 0.5, 1e-6);  // half of the update fell on pruned weights

  // An AWQ layer codes W·diag(s): re-coded the same way, it gives back the same codes.
  CompressedTensor scaled = q;
  scaled.input_scale.assign(64, 2.0f);
  const Tensor ws2 = scaled.dequantize();
  EXPECT_EQ(recode_merged(scaled, ws2, ws2).tensor.codes, q.codes);

  CompressedTensor low_rank;
  low_rank.name = "lr", low_rank.rows = 16, low_rank.cols = 64,
  low_rank.coding = WeightCoding::LowRank;
  try {
    recode_merged(low_rank, wq, wq);
    FAIL() << "a low-rank layer was re-coded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lr"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("--merge none"), std::string::npos) << e.what();
  }
}

// QAT's layer starts as the compressed layer exactly: fake-quantising its own decoded
// weights gives them back, and packing gives back its codes and scales.
TEST(Qat, StartsOnTheLayersGrid) {
  std::mt19937 rng(9);
  const Tensor w = test::random_tensor({8, 64}, rng, 0.5f);
  RtnOptions o;
  o.bits = 3, o.group_size = 32;
  const CompressedTensor c = quantize_rtn(w.as<float>(), 8, 64, o, nullptr, nullptr, "q");
  const Tensor wq = c.dequantize();
  const QatLayer l = qat_layer(c, wq);
  Tensor fake = Tensor::zeros(DType::F32, {8, 64});
  qat_fake_quantize(l, fake);
  for (int64_t i = 0; i < fake.numel(); ++i) EXPECT_EQ(fake.as<float>()[i], wq.as<float>()[i]);
  const CompressedTensor back = qat_pack(l);
  EXPECT_EQ(back.codes, c.codes);
  EXPECT_EQ(back.scales, c.scales);
  EXPECT_EQ(back.describe(), c.describe());
  EXPECT_THROW(qat_layer(dense_tensor(w, "d"), w), Error);
}

// The straight-through and LSQ gradients are the exact gradients of a surrogate that
// replaces round(v) by its tangent at the evaluation point (round(v0) + v − v0) and keeps
// each weight's clamp where it is: checked by central differences of Σ D·ŵ in double.
TEST(Qat, GradientsAreStraightThroughAndLsq) {
  const int bits = 3, rows = 4, cols = 32, group = 16;
  const double maxq = 7;
  std::mt19937 rng(4);
  const Tensor w0 = test::random_tensor({rows, cols}, rng, 0.5f);
  RtnOptions o;
  o.bits = bits, o.group_size = group;
  const CompressedTensor c = quantize_rtn(w0.as<float>(), rows, cols, o, nullptr, nullptr, "q");
  Tensor latent =
      test::random_tensor({rows, cols}, rng, 0.8f);  // some weights fall outside the grid
  QatLayer l = qat_layer(c, latent);
  const Tensor d = test::random_tensor({rows, cols}, rng, 1.0f);
  Tensor dlatent = Tensor::zeros(DType::F32, {rows, cols});
  std::vector<float> dscales(l.scales.size());
  qat_gradients(l, d, dlatent, dscales);

  const std::vector<float> w = l.latent.to_f32();
  auto surrogate = [&](const std::vector<double>& wv, const std::vector<double>& s) {
    double sum = 0;
    for (int64_t i = 0; i < rows * cols; ++i) {
      const size_t g = size_t((i / cols) * (cols / group) + (i % cols) / group);
      const double z = l.scheme.zeros[g], v0 = double(w[size_t(i)]) / l.scales[g];
      const double q0 = std::nearbyint(v0) + z;
      double fake;
      if (q0 < 0)
        fake = s[g] * (0 - z);
      else if (q0 > maxq)
        fake = s[g] * (maxq - z);
      else
        fake = s[g] * (std::nearbyint(v0) + wv[size_t(i)] / s[g] - v0);
      sum += d.as<float>()[i] * fake;
    }
    return sum;
  };
  std::vector<double> wv(w.begin(), w.end()), sv(l.scales.begin(), l.scales.end());
  int outside = 0;
  for (int64_t i = 0; i < rows * cols; ++i) {
    const double h = 1e-4;
    wv[size_t(i)] += h;
    const double up = surrogate(wv, sv);
    wv[size_t(i)] -= 2 * h;
    const double down = surrogate(wv, sv);
    wv[size_t(i)] += h;
    const double fd = (up - down) / (2 * h);
    if (fd == 0) ++outside;
    EXPECT_NEAR(dlatent.as<float>()[i], fd, 1e-4) << i;
  }
  EXPECT_GT(outside, 0);  // the clamped branch is exercised
  const double lsq = 1.0 / std::sqrt(double(group) * maxq);
  for (size_t g = 0; g < sv.size(); ++g) {
    const double h = 1e-5 * sv[g];
    sv[g] += h;
    const double up = surrogate(wv, sv);
    sv[g] -= 2 * h;
    const double down = surrogate(wv, sv);
    sv[g] += h;
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(dscales[g], lsq * fd, 1e-3 * (1 + std::abs(lsq * fd))) << g;
  }
}

// QAT of the demo model quantised to 2 bits, distilled: the held-out KL falls, and the
// packed result decodes to exactly the model the curve measured.
TEST(Recovery, QatWinsBackHeldOutKlAndPacksInTheSameLayout) {
  const std::string dir = std::string(MCW_SOURCE_DIR) + "/assets/models/fortunes-1m";
  const ModelFile file = open_model_file(dir);
  const LlamaModel base = load_llama(file);
  const auto tok = load_tokenizer(file);
  const std::vector<int32_t> train =
      tok->encode(test::read_bytes(dir + "/calib.txt").substr(0, 40000), false);
  const std::vector<int32_t> held_out =
      tok->encode(test::read_bytes(dir + "/eval.txt").substr(0, 20000), false);
  const CompressionResult rtn = compress_llama(
      base,
      parse_recipe("stages:\n  - algorithm: rtn\n    bits: 2\n    group_size: 64\n", "w2.yaml"), {},
      {});
  std::vector<CompressedTensor> layers;
  for (const CompressedLayer& l : rtn.layers) layers.push_back(l.tensor);
  RecoveryOptions o;
  o.steps = 24, o.batch = 4, o.seq_len = 64, o.lr = 1e-3, o.warmup = 2, o.eval_every = 0,
  o.eval_windows = 6;
  const RecoveryResult r = recover_qat(rtn.model, &base, layers, train, held_out, o);
  const double before = *r.history.front().eval_kl, after = *r.history.back().eval_kl;
  RecordProperty("kl_before", std::to_string(before));
  RecordProperty("kl_after", std::to_string(after));
  EXPECT_LT(after, 0.8 * before);
  ASSERT_EQ(r.quantized.size(), layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    EXPECT_EQ(r.quantized[i].describe(), layers[i].describe());
    const Tensor q = r.quantized[i].dequantize();
    const Tensor* m = nullptr;
    for (const auto& [n, t] : r.merged.named_tensors())
      if (n == layers[i].name) m = t;
    int64_t differ = 0;
    for (int64_t j = 0; j < q.numel(); ++j) differ += q.as<float>()[j] != m->as<float>()[j];
    EXPECT_EQ(differ, 0) << layers[i].name;
  }
}

// A recovery stopped after a checkpoint and resumed from it (through the file) ends where
// the uninterrupted run ends, bit for bit, for LoRA and for QAT; a checkpoint of another
// run is refused by name.
TEST(Recovery, ResumedFromACheckpointEqualsTheUninterruptedRun) {
  const LlamaModel teacher = test::random_llama(test::tiny_config(), 3);
  RtnOptions ro;
  ro.bits = 3, ro.group_size = 0, ro.scope = QuantScope::PerChannel;
  LlamaModel compressed = clone_model(teacher);
  std::vector<CompressedTensor> layers;
  for (const std::string& n : block_linear_names(compressed))
    for (auto& [name, t] : compressed.named_tensors())
      if (name == n) {
        layers.push_back(
            quantize_rtn(t->as<float>(), t->dim(0), t->dim(1), ro, nullptr, nullptr, n));
        *t = layers.back().dequantize();
      }
  const auto text = test::random_tokens(600, teacher.cfg.vocab_size, 1);
  const std::string path = (test::fresh_temp_dir() / "ckpt.safetensors").string();
  for (const bool qat : {false, true}) {
    RecoveryOptions o;
    o.steps = 6, o.batch = 2, o.seq_len = 16, o.rank = 2, o.eval_every = 2, o.eval_windows = 2;
    auto run = [&](const RecoveryOptions& opt) {
      if (qat) return recover_qat(compressed, &teacher, layers, text, text, opt);
      // LoRA's result holds no model: the adapters merged here, to compare as QAT's.
      RecoveryResult r =
          recover_lora(compressed, {}, &teacher, block_linear_names(compressed), text, text, opt);
      r.merged = clone_model(compressed);
      apply_lora(r.merged, r.adapters, "");
      return r;
    };
    const RecoveryResult whole = run(o);
    RecoveryOptions first = o;
    first.checkpoint_every = 4;
    first.checkpoint = [&](const RecoveryCheckpoint& c) {
      save_recovery_checkpoint(path, c, "run-a");
    };
    run(first);
    EXPECT_THROW(load_recovery_checkpoint(path, "run-b"), Error);
    const RecoveryCheckpoint c = load_recovery_checkpoint(path, "run-a");
    EXPECT_EQ(c.step, 4);
    RecoveryOptions second = o;
    second.resume = &c;
    const RecoveryResult resumed = run(second);
    ASSERT_EQ(resumed.history.size(), whole.history.size());
    EXPECT_EQ(*resumed.history.back().eval_kl, *whole.history.back().eval_kl);
    auto a = whole.merged.named_tensors();
    auto b = resumed.merged.named_tensors();
    for (size_t i = 0; i < a.size(); ++i)
      for (int64_t j = 0; j < a[i].second->numel(); ++j)
        ASSERT_EQ(a[i].second->as<float>()[j], b[i].second->as<float>()[j])
            << (qat ? "qat " : "lora ") << a[i].first;
  }
}

// The frozen backward hands over, for every linear (the head too), the x and dy whose
// product dyᵀ·x is the weight gradient the full backward forms.
TEST(FrozenBackward, HandsOverWhatFormsEveryWeightGradient) {
  const LlamaConfig cfg = test::tiny_config();
  const LlamaModel m = test::random_llama(cfg, 31);
  const int64_t B = 2, T = 5;
  const auto windows = test::random_tokens(size_t(B * (T + 1)), cfg.vocab_size, 32);
  LlamaActivations act;
  llama_train_forward(m, windows, B, T, act);
  LlamaModel g = zeros_like(m);
  llama_train_backward(m, act, 1.0, g);
  int calls = 0;
  llama_frozen_backward(
      m, act, 1.0,
      [&](int64_t layer, LlamaLinear which, const float* x, const float* dy, int64_t rows) {
        ++calls;
        const Tensor* ref = &linear_weight(g, layer, which);
        const int64_t out = ref->dim(0), in = ref->dim(1);
        std::vector<float> dw(size_t(out * in));
        matmul_at(dy, x, dw.data(), out, in, rows);
        for (int64_t j = 0; j < out * in; ++j)
          ASSERT_NEAR(dw[size_t(j)], ref->as<float>()[j],
                      1e-6 + 1e-5 * std::abs(ref->as<float>()[j]))
              << int(which) << " of layer " << layer;
      });
  EXPECT_EQ(calls, 7 * 2 + 1);
}

// An adapter applied to a model: each weight becomes W + s·B·A; a module the model lacks,
// or one of other shapes, is refused naming the adapter.
TEST(Lora, ApplyMergesEveryAdapterAndRefusesWhatDoesNotFit) {
  LlamaModel m = test::random_llama(test::tiny_config(), 3);
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  LoraAdapters ad = init_lora(m, {q}, 2, 4, LoraScaling::Lora, 1);
  for (int64_t i = 0; i < ad.adapters[0].b.numel(); ++i)
    ad.adapters[0].b.mutable_as<float>()[i] = 0.1f;
  const Tensor expect = merge_lora(m.layers[0].wq, ad.adapters[0], ad.scale());
  apply_lora(m, ad, "a-dir");
  for (int64_t i = 0; i < expect.numel(); ++i)
    EXPECT_EQ(m.layers[0].wq.as<float>()[i], expect.as<float>()[i]);
  LoraAdapters missing = ad;
  missing.adapters[0].name = "model.layers.7.self_attn.q_proj.weight";
  EXPECT_THROW(apply_lora(m, missing, "a-dir"), Error);
  LoraAdapters wrong =
      init_lora(m, {"model.layers.0.mlp.down_proj.weight"}, 2, 4, LoraScaling::Lora, 1);
  wrong.adapters[0].name = q;  // [dim, hidden] factors on a [q, dim] weight
  try {
    apply_lora(m, wrong, "a-dir");
    FAIL() << "an adapter of other shapes was applied";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a-dir"), std::string::npos) << e.what();
  }
}

// Learnt zero points (LSQ+): the layer starts on its grid exactly; ∂/∂z is −s·D on clamped
// weights and nothing inside the range, checked by central differences of the
// straight-through surrogate Σ D·ŵ (rounding held at the point); and a layer with
// non-integer zeros packs to what its fake quantisation gives.
TEST(Qat, LearntZerosAreLsqPlusOffsets) {
  const int bits = 3, rows = 4, cols = 32, group = 16;
  const float maxq = 7;
  std::mt19937 rng(6);
  const Tensor w0 = test::random_tensor({rows, cols}, rng, 0.5f);
  RtnOptions o;
  o.bits = bits, o.group_size = group;
  const CompressedTensor c = quantize_rtn(w0.as<float>(), rows, cols, o, nullptr, nullptr, "q");
  ASSERT_FALSE(c.symmetric);
  const Tensor wq = c.dequantize();
  QatLayer start = qat_layer(c, wq, /*learn_zeros=*/true);
  ASSERT_EQ(start.zeros, c.zeros);
  Tensor fake = Tensor::zeros(DType::F32, {rows, cols});
  qat_fake_quantize(start, fake);
  for (int64_t i = 0; i < fake.numel(); ++i) ASSERT_EQ(fake.as<float>()[i], wq.as<float>()[i]);

  QatLayer l = qat_layer(c, test::random_tensor({rows, cols}, rng, 0.8f), true);
  for (float& z : l.zeros) z += 0.37f;  // between integers, as training leaves them
  const Tensor d = test::random_tensor({rows, cols}, rng, 1.0f);
  Tensor dlatent = Tensor::zeros(DType::F32, {rows, cols});
  std::vector<float> dscales(l.scales.size()), dzeros(l.zeros.size());
  qat_gradients(l, d, dlatent, dscales, dzeros);
  const double lsq = 1.0 / std::sqrt(double(group) * maxq);
  const std::vector<float> w = l.latent.to_f32();
  // Σ D·ŵ as a function of the zeros, each code held at the point's (its clamp too).
  auto surrogate = [&](const std::vector<double>& z) {
    double sum = 0;
    for (int64_t i = 0; i < rows * cols; ++i) {
      const size_t g = size_t((i / cols) * (cols / group) + (i % cols) / group);
      const double s = l.scales[g], z0 = l.zeros[g];
      const double q0 = std::nearbyint(double(w[size_t(i)]) / s + z0);
      const double q = std::clamp(q0, 0.0, double(maxq));
      // Inside the range the code moves with z (straight through), so ŵ does not.
      const double code = q0 == q ? q + (z[g] - z0) : q;
      sum += d.as<float>()[i] * s * (code - z[g]);
    }
    return sum;
  };
  std::vector<double> zv(l.zeros.begin(), l.zeros.end());
  int moved = 0;
  for (size_t g = 0; g < zv.size(); ++g) {
    const double h = 1e-3;
    zv[g] += h;
    const double up = surrogate(zv);
    zv[g] -= 2 * h;
    const double down = surrogate(zv);
    zv[g] += h;
    const double fd = (up - down) / (2 * h);
    moved += std::abs(fd) > 1e-3;
    EXPECT_NEAR(dzeros[g], lsq * fd, 1e-4 * (1 + std::abs(lsq * fd))) << g;
  }
  EXPECT_GT(moved, 0);  // some groups have clamped weights
  const CompressedTensor packed = qat_pack(l);
  qat_fake_quantize(l, fake);
  const Tensor back = packed.dequantize();
  for (int64_t i = 0; i < fake.numel(); ++i)
    ASSERT_NEAR(back.as<float>()[i], fake.as<float>()[i],
                1e-6f * (1 + std::abs(fake.as<float>()[i])));
  EXPECT_NE(packed.zeros, c.zeros);
}
