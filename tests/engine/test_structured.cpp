// Structured pruning (FLAP-style heads and MLP channels): statistics and importance against
// naive computations, the smaller model against the masked large model, bias compensation,
// exact parameter counts, the pipeline stages, and saving/loading the biased model.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "engine/compress/calibrate.h"
#include "engine/compress/compress_llama.h"
#include "engine/compress/structured_model.h"
#include "engine/compress/structured_stage.h"
#include "engine/core/error.h"
#include "engine/export/gguf_export.h"
#include "engine/model/llama_save.h"
#include "engine/train/llama_backprop.h"
#include "llama_reference.h"
#include "compress_test_util.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

const std::vector<int32_t> kProbe = {3, 17, 0, 36, 5, 5, 21, 9, 30, 1, 12};

LlamaConfig config(int64_t heads, int64_t kv) {
  LlamaConfig c = test::tiny_config(heads, kv);
  c.hidden_dim = 48;
  return c;
}

// Rows with per-channel offsets and spreads, so means and variances differ by channel.
std::vector<float> offset_rows(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(size_t(n * cols));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < cols; ++j)
      x[size_t(r * cols + j)] = 0.3f * float(j % 5) - 0.5f + (0.2f + 0.1f * float(j % 7)) * d(rng);
  return x;
}

void expect_logits_near(const std::vector<float>& a, const std::vector<float>& b, double rel) {
  ASSERT_EQ(a.size(), b.size());
  double scale = 0;
  for (float v : b) scale = std::max(scale, double(std::fabs(v)));
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], rel * scale) << "at " << i;
}

// Mean squared logit difference over the probe tokens.
double logit_mse(const LlamaModel& a, const LlamaModel& b, const std::vector<int32_t>& toks) {
  const auto x = test::engine_logits(a, toks), y = test::engine_logits(b, toks);
  double e = 0;
  for (size_t i = 0; i < x.size(); ++i) e += double(x[i] - y[i]) * (x[i] - y[i]);
  return e / double(x.size());
}

}  // namespace

TEST(StructuredScore, MomentsMatchTwoPassComputation) {
  const int64_t n = 300, cols = 9;
  const auto x = offset_rows(n, cols, 1);
  ChannelMoments m(cols);
  m.add(x.data(), 100), m.add(x.data() + 100 * cols, 7), m.add(x.data() + 107 * cols, n - 107);
  ASSERT_EQ(m.count(), n);
  for (int64_t j = 0; j < cols; ++j) {
    double mean = 0, var = 0, sq = 0;
    for (int64_t r = 0; r < n; ++r) mean += x[size_t(r * cols + j)];
    mean /= double(n);
    for (int64_t r = 0; r < n; ++r) {
      const double v = x[size_t(r * cols + j)];
      var += (v - mean) * (v - mean), sq += v * v;
    }
    EXPECT_NEAR(m.mean(j), mean, 1e-12);
    EXPECT_NEAR(m.variance(j), var / double(n - 1), 1e-12);
    EXPECT_NEAR(m.mean_square(j), sq / double(n), 1e-12);
  }
}

// Per-head FLAP and Wanda scores and the chosen heads, against loops written out here.
TEST(StructuredScore, HeadRankingMatchesNaiveComputation) {
  const int64_t n = 200, rows = 16, hd = 4, heads = 6, cols = hd * heads;
  const auto x = offset_rows(n, cols, 2);
  std::mt19937 rng(3);
  Tensor w = test::random_tensor({rows, cols}, rng, 1.0f);
  ChannelMoments m(cols);
  m.add(x.data(), n);
  for (StructuredScore s : {StructuredScore::Flap, StructuredScore::Wanda}) {
    const auto got = unit_importance(channel_importance(w, m, s), hd);
    std::vector<double> want(size_t(heads), 0.0), squared(size_t(heads), 0.0);
    for (int64_t j = 0; j < cols; ++j) {
      double mean = 0, var = 0, ms = 0, wn = 0;
      for (int64_t r = 0; r < n; ++r) mean += x[size_t(r * cols + j)] / double(n);
      for (int64_t r = 0; r < n; ++r) {
        const double v = x[size_t(r * cols + j)];
        var += (v - mean) * (v - mean) / double(n - 1), ms += v * v / double(n);
      }
      double wabs = 0;
      for (int64_t r = 0; r < rows; ++r)
        wn += double(w.as<float>()[r * cols + j]) * w.as<float>()[r * cols + j],
            wabs += std::fabs(w.as<float>()[r * cols + j]) / double(rows);
      want[size_t(j / hd)] += s == StructuredScore::Flap ? var * wn : wabs * std::sqrt(ms);
      squared[size_t(j / hd)] += std::pow(var * wn, 2);
    }
    ASSERT_EQ(got.size(), want.size());
    for (size_t h = 0; h < want.size(); ++h) EXPECT_NEAR(got[h], want[h], 1e-9 * want[h]);
    if (s == StructuredScore::Flap) {  // FLAP's code: (metric ** 2) summed per head
      const auto sq = unit_importance(channel_importance(w, m, s), hd, true);
      for (size_t h = 0; h < squared.size(); ++h) EXPECT_NEAR(sq[h], squared[h], 1e-9 * squared[h]);
    }
    std::vector<int64_t> order(static_cast<size_t>(heads), 0);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return want[size_t(a)] < want[size_t(b)]; });
    std::vector<int64_t> lowest(order.begin(), order.begin() + 2);
    std::sort(lowest.begin(), lowest.end());
    EXPECT_EQ(least_important(got, 2), lowest);
  }
  EXPECT_EQ(unit_channels({1, 4}, hd), (std::vector<int64_t>{4, 5, 6, 7, 16, 17, 18, 19}));
  EXPECT_THROW(structured_score("l1"), Error);
}

// On the calibration rows themselves: with compensation the layer's output moves less
// than without, and the bias is Σ W[:, j]·mean_j over the removed channels.
TEST(Structured, BiasCompensationReducesOutputError) {
  const int64_t n = 256, rows = 12, cols = 20;
  const auto x = offset_rows(n, cols, 4);
  std::mt19937 rng(5);
  const Tensor w = test::random_tensor({rows, cols}, rng, 1.0f);
  ChannelMoments m(cols);
  m.add(x.data(), n);
  const auto removed = least_important(channel_importance(w, m, StructuredScore::Flap), 6);
  auto output_error = [&](bool compensate) {
    Tensor wm = Tensor::from_f32(w.to_f32(), w.shape());
    Tensor b;
    mask_input_channels(wm, compensate ? &b : nullptr, removed, m);
    if (compensate)
      for (int64_t r = 0; r < rows; ++r) {
        double want = 0;
        for (int64_t j : removed) {
          double mean = 0;
          for (int64_t t = 0; t < n; ++t) mean += x[size_t(t * cols + j)] / double(n);
          want += double(w.as<float>()[r * cols + j]) * mean;
        }
        EXPECT_NEAR(b.as<float>()[r], want, 1e-5);
      }
    double e = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        double full = 0, pruned = compensate ? b.as<float>()[r] : 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          full += double(w.as<float>()[r * cols + j]) * x[size_t(t * cols + j)];
          pruned += double(wm.as<float>()[r * cols + j]) * x[size_t(t * cols + j)];
        }
        e += (full - pruned) * (full - pruned);
      }
    return e;
  };
  EXPECT_LT(output_error(true), 0.5 * output_error(false));
}

// Slicing any plan gives the same logits as masking the big model (zeroed columns of
// o_proj/down_proj, the same output biases): MHA, GQA (whole kv groups) and MQA (heads).
TEST(Structured, SmallerModelEqualsMaskedModelForAnyPlan) {
  for (auto [h, kv] : {std::pair{4, 4}, {6, 3}, {4, 1}}) {
    SCOPED_TRACE(testing::Message() << h << " heads, " << kv << " kv heads");
    LlamaModel big = test::random_llama(config(h, kv), 10 + uint32_t(h * kv));
    std::mt19937 rng(7);
    big.cfg.o_bias = big.cfg.down_bias = true;
    for (LlamaLayer& L : big.layers)
      L.bo = test::random_tensor({big.cfg.dim}, rng, 0.3f),
      L.b_down = test::random_tensor({big.cfg.dim}, rng, 0.3f);
    const HeadUnits u = head_units(big.cfg, 0);
    const std::vector<std::vector<int64_t>> heads = {{0}, {u.count - 1}};
    const std::vector<std::vector<int64_t>> chans = {{1, 5, 40, 47}, {0, 2, 3, 30}};
    LlamaModel masked = test::deep_copy(big), small = test::deep_copy(big);
    const int64_t qw = u.heads_per_unit * big.cfg.head_dim;
    for (size_t l = 0; l < 2; ++l) {
      LlamaLayer& L = masked.layers[l];
      for (int64_t r = 0; r < big.cfg.dim; ++r) {
        for (int64_t j = heads[l][0] * qw; j < (heads[l][0] + 1) * qw; ++j)
          L.wo.mutable_as<float>()[r * big.cfg.q_dim() + j] = 0;
        for (int64_t j : chans[l]) L.w_down.mutable_as<float>()[r * big.cfg.hidden_dim + j] = 0;
      }
    }
    remove_heads(small, heads);
    remove_channels(small, chans);
    EXPECT_EQ(small.cfg.n_heads, h - u.heads_per_unit);
    EXPECT_EQ(small.cfg.n_kv_heads, kv > 1 ? kv - 1 : 1);
    EXPECT_EQ(small.cfg.hidden_dim, 44);
    EXPECT_EQ(small.layers[0].wk.dim(0), small.cfg.kv_dim());
    expect_logits_near(test::engine_logits(small, kProbe), test::engine_logits(masked, kProbe),
                       1e-5);
    // The forward pass with output biases against the naive reference.
    const auto ref = test::reference_logits(small, kProbe);
    const auto got = test::engine_logits(small, kProbe);
    for (size_t t = 0; t < kProbe.size(); ++t)
      for (size_t i = 0; i < 37; ++i) ASSERT_NEAR(got[t * 37 + i], ref[t][i], 1e-4);
  }
  LlamaModel m = test::random_llama(config(4, 2), 1);
  EXPECT_THROW(remove_heads(m, {{1, 0}, {0, 1}}), Error);  // not ascending
  EXPECT_THROW(remove_channels(m, {{1}}), Error);          // one layer's plan for two
  EXPECT_THROW(
      remove_channels(m, {{}, {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                               16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                               32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47}}),
      Error);  // every channel of a layer
}

// The stage end to end: the plan it reports, applied as a mask with the biases it made,
// gives the smaller model's logits; compensation beats none on the calibration text.
TEST(Structured, StageSmallerModelEqualsMaskedModelAndCompensationHelps) {
  const auto calib = calibration_windows(test::random_tokens(600, 11), 6, 48);
  for (bool heads : {true, false}) {
    SCOPED_TRACE(heads ? "heads" : "channels");
    LlamaConfig c = config(4, 4);
    LlamaModel base = test::random_llama(c, 12);
    // A shared offset in every embedding gives the o/down inputs non-zero channel means.
    for (int64_t i = 0; i < base.tok_embd.numel(); ++i)
      base.tok_embd.mutable_as<float>()[i] += 0.8f * float((i % c.dim) % 3);
    StructuredStageOptions o;
    o.heads = heads, o.fraction = heads ? 0.25 : 0.5;
    LlamaModel small = test::deep_copy(base);
    const auto plan = run_structured_stage(small, o, calib);
    ASSERT_EQ(plan.size(), 2u);
    EXPECT_EQ(plan[0].size(), heads ? 1u : 24u);
    LlamaModel masked = test::deep_copy(base);
    masked.cfg.o_bias = heads, masked.cfg.down_bias = !heads;
    for (size_t l = 0; l < 2; ++l) {
      LlamaLayer& L = masked.layers[l];
      Tensor& w = heads ? L.wo : L.w_down;
      const int64_t width = heads ? c.head_dim : 1, cols = w.dim(1);
      for (int64_t unit : plan[l])
        for (int64_t r = 0; r < w.dim(0); ++r)
          for (int64_t j = unit * width; j < (unit + 1) * width; ++j)
            w.mutable_as<float>()[r * cols + j] = 0;
      (heads ? L.bo : L.b_down) = small.layers[l].*(heads ? &LlamaLayer::bo : &LlamaLayer::b_down);
    }
    expect_logits_near(test::engine_logits(small, kProbe), test::engine_logits(masked, kProbe),
                       1e-5);

    o.compensate = false;
    LlamaModel plain = test::deep_copy(base);
    run_structured_stage(plain, o, calib);
    EXPECT_TRUE(plain.layers[0].bo.empty() && plain.layers[0].b_down.empty());
    EXPECT_LT(logit_mse(small, base, calib[0]), logit_mse(plain, base, calib[0]));
  }
}

// FLAP's statistics: every layer's heads are chosen from the unpruned model's o_proj inputs
// (a plain forward pass, scored here with the squares of the channel scores summed per
// head); with the pruned blocks' inputs the later layers' choice can differ.
TEST(Structured, DenseStatisticsChooseFromTheUnprunedModel) {
  const auto calib = calibration_windows(test::random_tokens(600, 21), 6, 48);
  LlamaConfig c = config(8, 8);
  c.n_layers = 3;
  const LlamaModel base = test::random_llama(c, 22);
  std::vector<ChannelMoments> moments(3, ChannelMoments(c.q_dim()));
  CalibrationHooks h;
  h.observe = [&](const LinearGroup& g, const float* x, int64_t rows) {
    if (g.names[0].ends_with("o_proj.weight")) moments[size_t(g.layer)].add(x, rows);
  };
  LlamaModel plain = test::deep_copy(base);
  sequential_calibrate(plain, calib, h);
  StructuredStageOptions o;
  o.heads = true, o.fraction = 0.5;
  LlamaModel pruned = test::deep_copy(base);
  const auto plan = run_structured_stage(pruned, o, calib);
  for (size_t l = 0; l < 3; ++l) {
    std::vector<double> head(8, 0.0);
    for (int64_t j = 0; j < c.q_dim(); ++j) {
      double wn = 0;
      for (int64_t r = 0; r < c.dim; ++r) wn += std::pow(base.layers[l].wo.as<float>()[r * c.q_dim() + j], 2);
      head[size_t(j / c.head_dim)] += std::pow(moments[l].variance(j) * wn, 2);
    }
    EXPECT_EQ(plan[l], least_important(head, 4)) << l;
  }
  o.uncompressed_inputs = false;
  LlamaModel sequential = test::deep_copy(base);
  EXPECT_EQ(run_structured_stage(sequential, o, calib)[0], plan[0]);  // block 0 sees the same
}

// GQA heads then channels through the pipeline: exact parameter count, Dense entries with
// the new shapes, and a later quantisation stage that sees the smaller shapes.
TEST(Structured, PipelineParameterCountAndShapes) {
  const LlamaConfig c = config(6, 3);  // 3 kv groups of 2 heads, head_dim 8, dim 48
  const LlamaModel base = test::random_llama(c, 20);
  const Recipe r = parse_recipe(
      "stages:\n  - algorithm: heads\n    fraction: 0.34\n  - algorithm: channels\n    fraction: "
      "0.25\n"
      "    score: wanda\n  - algorithm: rtn\n    bits: 4\n    group_size: 0\n"
      "    targets: [\"*o_proj*\", \"*down_proj*\"]\n",
      "s.yaml");
  const CompressionResult res =
      compress_llama(base, r, test::random_tokens(800, 21), test::calib_options(4, 40));
  const LlamaConfig& s = res.model.cfg;
  EXPECT_EQ(s.n_heads, 4);
  EXPECT_EQ(s.n_kv_heads, 2);
  EXPECT_EQ(s.hidden_dim, 36);
  EXPECT_TRUE(s.o_bias && s.down_bias);
  // Per layer: q loses 16 rows, k and v 8 rows each, o 16 columns (all × dim 48); gate
  // and up 12 rows, down 12 columns; o_proj and down_proj gain a 48-value bias.
  const uint64_t per_layer = 48 * (16 + 8 + 8 + 16) + 48 * 12 * 3 - 2 * 48;
  EXPECT_EQ(res.model.parameter_count(), base.parameter_count() - 2 * per_layer);
  EXPECT_EQ(res.parameters, res.model.parameter_count());
  int dense = 0, rtn = 0;
  for (const CompressedLayer& l : res.layers) {
    const Tensor* w = find_weight(const_cast<LlamaModel&>(res.model), l.tensor.name);
    EXPECT_EQ(l.tensor.rows, w->dim(0)) << l.tensor.name;
    EXPECT_EQ(l.tensor.cols, w->dim(1)) << l.tensor.name;
    if (l.algorithm == "rtn") {
      ++rtn;
      EXPECT_EQ(l.tensor.bits, 4);
    } else {
      ++dense;
      EXPECT_EQ(l.tensor.coding, WeightCoding::Dense);
    }
  }
  EXPECT_EQ(rtn, 4);        // o and down of 2 layers, on their smaller shapes
  EXPECT_EQ(dense, 2 * 5);  // q k v gate up
  EXPECT_NO_THROW(test::engine_logits(res.model, kProbe));
}

TEST(Structured, PipelineErrorsBeforeWork) {
  LlamaConfig c = config(4, 2);
  c.hidden_dim = 64;
  const LlamaModel base = test::random_llama(c, 30);
  const auto calib = test::random_tokens(200, 31);
  auto err = [&](const std::string& text) {
    try {
      compress_llama(base, parse_recipe(text, "e.yaml"), calib, test::calib_options(2, 32));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(err("stages:\n  - algorithm: heads\n    targets: [\"model.layers.0.*\"]\n"),
            "e.yaml: line 2: stage 1 (heads): must target the self_attn.o_proj.weight of every "
            "layer (every layer loses units); layer 1 is not targeted");
  EXPECT_EQ(
      err("stages:\n  - algorithm: heads\n    fraction: 0.1\n"),
      "e.yaml: line 2: stage 1 (heads): fraction 0.1 of 2 key/value head groups removes nothing");
  // After channels 0.25 the down_proj has 48 inputs: group 32 no longer divides them.
  EXPECT_EQ(err("stages:\n  - algorithm: channels\n    fraction: 0.25\n  - algorithm: rtn\n"
                "    group_size: 32\n    targets: [\"*down_proj*\"]\n"),
            "e.yaml: line 4: stage 2 (rtn): group_size 32 does not divide the 48 input columns of "
            "model.layers.0.mlp.down_proj.weight");
}

// The smaller biased model saved as a HF directory and as GGUF loads back to the same
// logits; config.json says what transformers needs; training refuses it.
TEST(Structured, SaveLoadRoundTripAndTrainingRefuses) {
  LlamaModel m = test::random_llama(config(4, 2), 40);
  StructuredStageOptions o;
  run_structured_stage(m, o, calibration_windows(test::random_tokens(300, 41), 3, 40));
  o.heads = false;
  run_structured_stage(m, o, calibration_windows(test::random_tokens(300, 42), 3, 40));
  ASSERT_EQ(m.cfg.n_heads, 2);
  const std::string dir = testing::TempDir() + "/structured_hf";
  save_llama_hf(m, dir);
  std::ifstream f(dir + "/config.json");
  const auto j = nlohmann::json::parse(f);
  EXPECT_EQ(j["attention_bias"], true);
  EXPECT_EQ(j["mlp_bias"], true);
  EXPECT_EQ(j["head_dim"], 8);
  EXPECT_EQ(j["num_attention_heads"], 2);
  EXPECT_EQ(j["intermediate_size"], 36);
  const LlamaModel hf = load_llama(dir);
  EXPECT_TRUE(hf.cfg.o_bias && hf.cfg.down_bias && hf.cfg.qkv_bias);  // zero q/k/v biases
  EXPECT_EQ(test::engine_logits(hf, kProbe), test::engine_logits(m, kProbe));

  const std::string gg = testing::TempDir() + "/structured.gguf";
  save_llama_gguf(m, gg, DType::F32);
  const LlamaModel g = load_llama(gg);
  EXPECT_TRUE(g.cfg.o_bias && g.cfg.down_bias);
  EXPECT_EQ(test::engine_logits(g, kProbe), test::engine_logits(m, kProbe));
  std::filesystem::remove_all(dir);
  std::filesystem::remove(gg);

  LlamaActivations act;
  std::vector<int32_t> win(9, 1);
  try {
    llama_train_forward(m, win, 1, 8, act);
    ADD_FAILURE() << "training accepted a model with output biases";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("o_proj/down_proj biases"), std::string::npos);
  }
}
