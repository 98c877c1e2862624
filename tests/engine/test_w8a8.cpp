// SmoothQuant W8A8 in the model: the per-token int8 activations of the forward pass against
// a naive quantise-dequantise, smoothing as an identity, smoothing's benefit on a model with
// activation outlier channels, and the pipeline stage with its saved flag.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/compress/calibrate.h"
#include "engine/compress/compress_llama.h"
#include "engine/compress/smoothquant_stage.h"
#include "engine/core/error.h"
#include "engine/kernels/ops.h"
#include "engine/export/gguf_export.h"
#include "engine/model/llama_save.h"
#include "engine/train/llama_backprop.h"
#include "llama_reference.h"
#include "compress_test_util.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

const std::vector<int32_t> kProbe = {3, 17, 0, 36, 5, 5, 21, 9, 30, 1, 12};

LlamaConfig config() {
  LlamaConfig c = test::tiny_config(4, 2);
  c.hidden_dim = 64;
  return c;
}

// Activation outliers as LLMs have them: channels 3 and 17 of both norms scaled by k and
// the matching input columns of q/k/v and gate/up divided by k. The f32 function is
// unchanged, but those channels of every token's q/k/v and gate/up input are k times
// larger than the rest, so per-token int8 resolves the other channels coarsely.
void inject_outliers(LlamaModel& m, float k) {
  for (LlamaLayer& L : m.layers)
    for (int64_t j : {3, 17}) {
      L.attn_norm.mutable_as<float>()[j] *= k;
      L.ffn_norm.mutable_as<float>()[j] *= k;
      for (Tensor* w : {&L.wq, &L.wk, &L.wv, &L.w_gate, &L.w_up})
        for (int64_t r = 0; r < w->dim(0); ++r) w->mutable_as<float>()[r * w->dim(1) + j] /= k;
    }
}

double max_abs_diff(const std::vector<test::Vec>& a, const std::vector<test::Vec>& b) {
  double d = 0;
  for (size_t t = 0; t < a.size(); ++t)
    for (size_t i = 0; i < a[t].size(); ++i) d = std::max(d, std::fabs(a[t][i] - b[t][i]));
  return d;
}

// Mean over positions of KL(p || q) between the softmaxes of two logit sets [T * V].
double mean_kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits, size_t V) {
  double kl = 0;
  const size_t T = p_logits.size() / V;
  for (size_t t = 0; t < T; ++t) {
    std::vector<float> p(p_logits.begin() + long(t * V), p_logits.begin() + long((t + 1) * V));
    std::vector<float> q(q_logits.begin() + long(t * V), q_logits.begin() + long((t + 1) * V));
    softmax_row(p.data(), int64_t(V)), softmax_row(q.data(), int64_t(V));
    for (size_t i = 0; i < V; ++i) kl += double(p[i]) * std::log(double(p[i]) / double(q[i]));
  }
  return kl / double(T);
}

}  // namespace

TEST(W8A8, PerTokenFakeQuantMatchesNaiveQuantiseDequantise) {
  const int64_t rows = 5, cols = 40;
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(size_t(rows * cols));
  for (float& v : x) v = d(rng);
  x[7] = 60.0f, x[cols + 3] = -45.0f;  // outliers set the scale of their tokens
  std::fill(x.begin() + 2 * cols, x.begin() + 3 * cols, 0.0f);  // an all-zero token
  std::vector<float> y = x;
  fake_quantize_rows_int8(y.data(), rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const test::Vec row(x.begin() + r * cols, x.begin() + (r + 1) * cols);
    const test::Vec want = test::ref_int8(row);
    double m = 0;
    for (double v : row) m = std::max(m, std::fabs(v));
    for (int64_t c = 0; c < cols; ++c) {
      ASSERT_NEAR(y[size_t(r * cols + c)], want[size_t(c)], 1e-6 * std::max(m, 1.0))
          << r << "," << c;
      ASSERT_LE(std::fabs(y[size_t(r * cols + c)] - row[size_t(c)]), m / 127 / 2 * 1.0001 + 1e-12);
    }
  }
  EXPECT_FLOAT_EQ(int8_row_scale(x.data(), cols), 60.0f / 127.0f);
}

// Each input bit quantises exactly its linears' input: the forward pass matches the naive
// reference with int8 at the same place, to a small share of what the quantisation moves.
TEST(W8A8, ForwardQuantisesTheFlaggedLinearInputs) {
  LlamaModel m = test::random_llama(config(), 2);
  inject_outliers(m, 10.0f);
  const auto fp = test::reference_logits(m, kProbe, 0);
  const size_t V = size_t(m.cfg.vocab_size);
  for (int bit : {kActInt8Qkv, kActInt8O, kActInt8GateUp, kActInt8Down, kActInt8All}) {
    SCOPED_TRACE(testing::Message() << "act_int8 " << bit);
    for (LlamaLayer& L : m.layers) L.act_int8 = uint8_t(bit);
    const auto ref = test::reference_logits(m, kProbe);
    const auto got = test::engine_logits(m, kProbe);
    const double moved = max_abs_diff(ref, fp);
    EXPECT_GT(moved, 1e-4);
    double off = 0;
    for (size_t t = 0; t < kProbe.size(); ++t)
      for (size_t i = 0; i < V; ++i) off = std::max(off, std::fabs(got[t * V + i] - ref[t][i]));
    EXPECT_LT(off, 0.02 * moved);
  }
}

// Folding the scales into norms and weights changes nothing in f32.
TEST(W8A8, SmoothingAloneIsAnIdentity) {
  LlamaModel base = test::random_llama(config(), 3);
  inject_outliers(base, 30.0f);
  LlamaModel smoothed = test::deep_copy(base);
  std::set<std::string> all;
  for (const LinearGroup& g : linear_groups(base)) all.insert(g.names.begin(), g.names.end());
  SmoothQuantStageOptions o;
  o.quantize = false;
  run_smoothquant_stage(smoothed, o, all, calibration_windows(test::random_tokens(400, 4), 4, 40));
  // The outlier channels' norm weights really moved (the scales are far from 1).
  EXPECT_LT(smoothed.layers[0].attn_norm.as<float>()[3],
            0.5f * base.layers[0].attn_norm.as<float>()[3]);
  EXPECT_LT(smoothed.layers[1].ffn_norm.as<float>()[17],
            0.5f * base.layers[1].ffn_norm.as<float>()[17]);
  const auto a = test::engine_logits(smoothed, kProbe), b = test::engine_logits(base, kProbe);
  double scale = 0;
  for (float v : b) scale = std::max(scale, double(std::fabs(v)));
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5 * scale) << i;
  for (const LlamaLayer& L : smoothed.layers) EXPECT_EQ(L.act_int8, 0);
}

// With outlier channels, W8A8 after smoothing stays closer to the f32 model than plain
// W8A8 (the same int8 weight quantiser and per-token activations in both).
TEST(W8A8, SmoothingLowersKlOnAModelWithOutlierChannels) {
  LlamaModel base = test::random_llama(config(), 5);
  inject_outliers(base, 40.0f);
  const auto calib = test::random_tokens(1200, 6);
  const auto probe = test::random_tokens(64, 7);
  const CompressionResult smooth = compress_llama(
      base, parse_recipe("stages:\n  - algorithm: smoothquant\n    alpha: 0.5\n", "sq"), calib,
      test::calib_options(8, 48));
  LlamaModel plain = test::deep_copy(base);
  std::set<std::string> all;
  for (const LinearGroup& g : linear_groups(base)) all.insert(g.names.begin(), g.names.end());
  SmoothQuantStageOptions o;
  o.smooth = false;
  run_smoothquant_stage(plain, o, all, calibration_windows(calib, 8, 48));
  const auto ref = test::engine_logits(base, probe);
  const double kl_smooth = mean_kl(ref, test::engine_logits(smooth.model, probe), 37);
  const double kl_plain = mean_kl(ref, test::engine_logits(plain, probe), 37);
  EXPECT_GT(kl_plain, 0);
  EXPECT_LT(kl_smooth, 0.5 * kl_plain) << kl_smooth << " vs " << kl_plain;
}

// The stage in the pipeline: int8 per-channel weights for every linear, every input
// flagged, and the flag survives a HF and a GGUF round trip (same logits).
TEST(W8A8, PipelineStageSavesAndLoadsTheFlag) {
  const LlamaModel base = test::random_llama(config(), 8);
  const CompressionResult res =
      compress_llama(base, parse_recipe("stages:\n  - algorithm: smoothquant\n", "sq"),
                     test::random_tokens(500, 9), test::calib_options(4, 40));
  ASSERT_EQ(res.layers.size(), 2u * 7);
  for (const CompressedLayer& l : res.layers) {
    EXPECT_EQ(l.tensor.describe(), "int8 per-channel sym");
    EXPECT_GT(l.relative_error, 0);
    EXPECT_LT(l.relative_error, 1e-3);
  }
  for (const LlamaLayer& L : res.model.layers) EXPECT_EQ(L.act_int8, kActInt8All);
  const auto logits = test::engine_logits(res.model, kProbe);

  const std::string dir = testing::TempDir() + "/w8a8_hf";
  save_llama_hf(res.model, dir);
  std::ifstream f(dir + "/config.json");
  EXPECT_EQ(nlohmann::json::parse(f)["mcw_activation_int8"], nlohmann::json({15, 15}));
  EXPECT_EQ(test::engine_logits(load_llama(dir), kProbe), logits);
  const std::string gg = testing::TempDir() + "/w8a8.gguf";
  save_llama_gguf(res.model, gg, DType::F32);
  const LlamaModel g = load_llama(gg);
  EXPECT_EQ(g.layers[1].act_int8, kActInt8All);
  EXPECT_EQ(test::engine_logits(g, kProbe), logits);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(gg);

  LlamaActivations act;
  std::vector<int32_t> win(9, 1);
  EXPECT_THROW(llama_train_forward(res.model, win, 1, 8, act), Error);
}

TEST(W8A8, LoaderRejectsABadFlag) {
  const LlamaModel m = test::random_llama(config(), 10);
  const std::string dir = testing::TempDir() + "/w8a8_bad";
  save_llama_hf(m, dir);
  std::ifstream in(dir + "/config.json");
  auto j = nlohmann::json::parse(in);
  in.close();
  for (const nlohmann::json& bad :
       {nlohmann::json({15}), nlohmann::json({15, 16}), nlohmann::json("all")}) {
    j["mcw_activation_int8"] = bad;
    std::ofstream(dir + "/config.json") << j.dump();
    try {
      load_llama(dir);
      ADD_FAILURE() << "accepted " << bad.dump();
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(dir + "/config.json: ", 0), 0u) << msg;
      EXPECT_NE(msg.find("'mcw_activation_int8'"), std::string::npos) << msg;
    }
  }
  std::filesystem::remove_all(dir);
}
