// Llama 3.x rope scaling through GGUF's rope_freqs.weight: the divisors convert_hf_to_gguf.py
// writes, the scaling recovered from them, and an export that llama.cpp and MCW read back
// with the same rotary frequencies.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>

#include "engine/core/error.h"
#include "engine/export/gguf_export.h"
#include "engine/export/gguf_file_type.h"
#include "engine/io/gguf.h"
#include "engine/io/model_file.h"
#include "engine/kernels/ops.h"
#include "engine/model/llama_save.h"
#include "engine/model/rope_freq_factors.h"
#include "llama_reference.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

LlamaConfig llama3_config(double theta, int64_t head_dim, double factor, double low, double high,
                          double orig) {
  LlamaConfig c;
  c.rope_theta = theta, c.head_dim = head_dim;
  c.rope_scaling.enabled = true;
  c.rope_scaling.factor = factor, c.rope_scaling.low_freq_factor = low;
  c.rope_scaling.high_freq_factor = high, c.rope_scaling.original_max_position = orig;
  return c;
}

// transformers' _compute_llama3_parameters, written from its definition: inverse
// frequencies scaled down by `factor` past the low-frequency wavelength, blended between.
std::vector<double> hf_llama3_inv_freq(const LlamaConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  std::vector<double> out;
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const double f = 1 / std::pow(c.rope_theta, double(2 * i) / double(c.head_dim));
    const double wl = 2 * std::numbers::pi / f;
    const double smooth = (s.original_max_position / wl - s.low_freq_factor) /
                          (s.high_freq_factor - s.low_freq_factor);
    if (wl < s.original_max_position / s.high_freq_factor)
      out.push_back(f);
    else if (wl > s.original_max_position / s.low_freq_factor)
      out.push_back(f / s.factor);
    else
      out.push_back((1 - smooth) * f / s.factor + smooth * f);
  }
  return out;
}

}  // namespace

// Llama-3.1-8B's and Llama-3.2-1B's scalings: divisors 1 and `factor` at the ends, the HF
// frequencies divided by them, and the parameters recovered from the divisors alone.
TEST(RopeFreqFactors, RealScalingsRoundTrip) {
  for (const LlamaConfig& c :
       {llama3_config(500000, 128, 8, 1, 4, 8192), llama3_config(500000, 64, 32, 1, 4, 8192)}) {
    const std::vector<float> f = llama3_rope_factors(c);
    ASSERT_EQ(int64_t(f.size()), c.head_dim / 2);
    EXPECT_EQ(f.front(), 1.0f);
    EXPECT_EQ(f.back(), float(c.rope_scaling.factor));
    const std::vector<double> hf = hf_llama3_inv_freq(c);
    const std::vector<float> mcw = rope_inv_freq(c);
    for (size_t i = 0; i < f.size(); ++i) {
      const double base = 1 / std::pow(c.rope_theta, double(2 * i) / double(c.head_dim));
      EXPECT_NEAR(base / f[i], hf[i], 1e-6 * hf[i]) << i;
      EXPECT_NEAR(mcw[i], hf[i], 1e-6 * hf[i]) << i;
    }
    const RopeScaling s = llama3_scaling_from_factors(f, c, "m.gguf");
    EXPECT_TRUE(s.enabled);
    EXPECT_EQ(s.factor, c.rope_scaling.factor);
    EXPECT_EQ(s.original_max_position, 8192);
    EXPECT_EQ(s.low_freq_factor, 1);
    EXPECT_EQ(s.high_freq_factor, 4);
  }
}

TEST(RopeFreqFactors, AllOnesIsNoScaling) {
  LlamaConfig c = llama3_config(10000, 16, 1, 1, 4, 8192);
  EXPECT_FALSE(llama3_scaling_from_factors(std::vector<float>(8, 1.0f), c, "m.gguf").enabled);
}

TEST(RopeFreqFactors, RefusesWhatIsNotLlama3Scaling) {
  const LlamaConfig c = llama3_config(10000, 16, 4, 1, 8, 256);
  const std::vector<float> good = llama3_rope_factors(c);
  auto refused = [&](std::vector<float> f, const char* what) {
    try {
      llama3_scaling_from_factors(f, c, "bad.gguf");
      ADD_FAILURE() << "accepted: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.gguf"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("rope_freqs.weight"), std::string::npos) << e.what();
    }
  };
  refused({1, 2, 3}, "wrong count");
  std::vector<float> f = good;
  f[3] = std::nanf("");
  refused(f, "NaN");
  f = good, f[0] = -1;
  refused(f, "negative");
  f = good, f[2] = 3.9f;  // a blend point off the line through the others
  refused(f, "not Llama 3's form");
  f = {1, 4, 1, 4, 1, 4, 1, 4};
  refused(f, "not monotone");
}

// A model with a short original context (scaling visible at a few dozen positions): its F32
// GGUF carries rope_freqs.weight and reads back with the same scaling and logits.
TEST(RopeFreqFactors, GgufExportCarriesTheScaling) {
  const fs::path dir = test::fresh_temp_dir();
  LlamaConfig c = test::tiny_config(4, 2);
  c.head_dim = 16, c.dim = 64, c.vocab_size = 258, c.max_seq_len = 64;
  c.rope_scaling = llama3_config(10000, 16, 4, 1, 8, 256).rope_scaling;
  const LlamaModel src = test::random_llama(c, 9);
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(src, (dir / "hf").string(), tok);
  const std::string out = (dir / "m.gguf").string();
  export_gguf((dir / "hf").string(), out, *find_gguf_file_type("F32"));
  const GGUFFile g = read_gguf(out);
  const Tensor* rf = nullptr;
  for (const Tensor& t : g.tensors)
    if (t.name() == "rope_freqs.weight") rf = &t;
  ASSERT_NE(rf, nullptr);
  EXPECT_EQ(rf->dtype(), DType::F32);
  const std::vector<float> want = llama3_rope_factors(c), got = rf->to_f32();
  EXPECT_EQ(got, want);

  const LlamaModel back = load_llama(open_model_file(out));
  EXPECT_TRUE(back.cfg.rope_scaling.enabled);
  EXPECT_EQ(back.cfg.rope_scaling.factor, 4);
  const std::vector<float> a = rope_inv_freq(src.cfg), b = rope_inv_freq(back.cfg);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-6 * a[i]) << i;
  std::vector<int32_t> ids;
  for (int i = 0; i < 60; ++i) ids.push_back(int32_t((i * 37) % 250));
  const auto la = test::engine_logits(src, ids), lb = test::engine_logits(back, ids);
  double worst = 0;
  for (size_t i = 0; i < la.size(); ++i) worst = std::max(worst, std::fabs(double(la[i]) - lb[i]));
  EXPECT_LT(worst, 1e-3);
}
