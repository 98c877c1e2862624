// The packed model's forward pass against llama_forward on the decoded model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/compress/calibrate.h"
#include "engine/core/blocks.h"
#include "engine/eval/packed_llama.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/recipe/recipe.h"
#include "compress_test_util.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

LlamaConfig config() {
  LlamaConfig c = test::tiny_config(4, 2);
  c.hidden_dim = 64;
  c.qkv_bias = true;
  return c;
}

CompressionResult compress(const LlamaModel& base, const std::string& stage) {
  return compress_llama(base, parse_recipe("stages:\n  - " + stage + "\n", "r.yaml"), {}, {});
}

// Prefill of 5 (small-m kernels) and 11 (tiled) tokens, then 3 decode steps: every logit
// of the packed model within `rel` of the f32 forward pass (relative to the largest).
void expect_same_logits_once(const PackedLlama& packed, const LlamaModel& model, double rel) {
  const int64_t V = model.cfg.vocab_size;
  for (int64_t prefill : {5, 11}) {
    KVCache a(model.cfg, 16), b(model.cfg, 16);
    std::vector<int32_t> prompt;
    for (int64_t i = 0; i < prefill; ++i) prompt.push_back(int32_t((i * 11 + 3) % V));
    std::vector<float> want(size_t(prefill * V)), got(want.size());
    llama_forward(model, prompt, a, want.data());
    packed.forward(prompt, b, got.data());
    for (int step = 0; step < 4; ++step) {
      float scale = 0;
      for (float v : want) scale = std::max(scale, std::abs(v));
      for (size_t k = 0; k < want.size(); ++k)
        ASSERT_NEAR(got[k], want[k], rel * scale) << "prefill " << prefill << " step " << step;
      const int32_t next = int32_t(step * 5 % V);
      want.resize(size_t(V)), got.resize(size_t(V));
      llama_forward(model, {&next, 1}, a, nullptr, want.data());
      packed.forward({&next, 1}, b, nullptr, got.data());
    }
  }
}

// Exact on f32 activations; on int8 activations (the default for small m) within 3 %.
void expect_same_logits(const PackedLlama& packed, const LlamaModel& model, double rel) {
  for (bool int8 : {false, true}) {
    set_int8_activations(int8);
    expect_same_logits_once(packed, model, int8 ? std::max(rel, 0.03) : rel);
  }
  set_int8_activations(true);
}

int count(const std::vector<std::string>& paths, const std::string& what) {
  return int(std::count_if(paths.begin(), paths.end(), [&](const std::string& p) {
    return p.find(what) != std::string::npos;
  }));
}

}  // namespace

TEST(PackedLlama, Rtn4BitMatchesTheDecodedModel) {
  const LlamaModel base = test::random_llama(config(), 3);
  const CompressionResult c = compress(base, "algorithm: rtn\n    bits: 4\n    group_size: 32");
  const PackedLlama exact(c.model, c.layers, {/*uncompressed_f16=*/false});
  EXPECT_EQ(count(exact.paths(), "affine int4"), 14);
  EXPECT_EQ(count(exact.paths(), "f32 dense (uncompressed)"), 1);  // the head
  expect_same_logits(exact, c.model, 1e-5);
  // As deployed: the head in f16.
  const PackedLlama deployed(c.model, c.layers);
  EXPECT_EQ(count(deployed.paths(), "f16 dense (uncompressed)"), 1);
  expect_same_logits(deployed, c.model, 2e-3);
  EXPECT_LT(deployed.weight_bytes(), exact.weight_bytes());
}

TEST(PackedLlama, TwoOfFourMatchesTheDecodedModel) {
  const LlamaModel base = test::random_llama(config(), 4);
  const CompressionResult c = compress(base, "algorithm: magnitude\n    pattern: \"2:4\"");
  const PackedLlama packed(c.model, c.layers, {false});
  EXPECT_EQ(count(packed.paths(), "2:4 sparse f16"), 14);
  expect_same_logits(packed, c.model, 2e-3);  // kept values are stored as f16
}

TEST(PackedLlama, UncompressedAndMismatchedWeights) {
  LlamaModel base = test::random_llama(config(), 5);
  const PackedLlama f16(base, {});
  EXPECT_EQ(count(f16.paths(), "f16 dense (uncompressed)"), 15);
  expect_same_logits(f16, base, 2e-3);

  CompressionResult c = compress(base, "algorithm: rtn\n    bits: 3\n    group_size: 32");
  // AWQ-style: the model weight is the decoded one times a factor per input column.
  float* wq = c.model.layers[0].wq.mutable_as<float>();
  for (int64_t r = 0; r < c.model.layers[0].wq.dim(0); ++r)
    for (int64_t col = 0; col < 32; ++col) wq[r * 32 + col] *= 0.5f + float(col % 5) * 0.25f;
  // A weight edited after compression no longer decodes from its tensor: packed as dense.
  c.model.layers[1].w_up.mutable_as<float>()[7] += 0.5f;
  const PackedLlama packed(c.model, c.layers, {false});
  EXPECT_EQ(count(packed.paths(), "inputs scaled per column"), 1);
  EXPECT_EQ(count(packed.paths(), "does not decode to the model's weight"), 1);
  // All but up_proj of layer 1, in the Affine layout or (AVX-512 VBMI) the lookup-table one.
  EXPECT_EQ(count(packed.paths(), "affine int3") + count(packed.paths(), "lut int3"), 13);
  expect_same_logits(packed, c.model, 1e-5);
}

TEST(PackedLlama, LatencyRunsOnThePackedModel) {
  LlamaConfig cfg = config();
  cfg.max_seq_len = 20;
  const LlamaModel base = test::random_llama(cfg, 6);
  const CompressionResult c = compress(base, "algorithm: rtn\n    bits: 2\n    group_size: 32");
  const LatencyResult r = measure_latency(PackedLlama(c.model, c.layers), {8, 4, 2});
  EXPECT_EQ(r.prefill, 8);
  EXPECT_EQ(r.decode, 4);
  EXPECT_TRUE(std::isfinite(r.ms_per_token) && r.ms_per_token > 0);
  EXPECT_TRUE(std::isfinite(r.prefill_tokens_per_s) && r.prefill_tokens_per_s > 0);
}

TEST(PackedLlama, AwqLayersCarryTheirInputScale) {
  const LlamaModel base = test::random_llama(config(), 7);
  std::vector<int32_t> calib(600);
  for (size_t i = 0; i < calib.size(); ++i) calib[i] = int32_t((i * 13 + i / 7) % 37);
  const CompressionResult c = compress_llama(
      base,
      parse_recipe("stages:\n  - algorithm: awq\n    bits: 4\n    group_size: 32\n", "r.yaml"),
      calib, test::calib_options(8, 32));
  // o_proj is not scaled under grouped-query attention (4 heads over 2 kv heads here).
  for (const CompressedLayer& l : c.layers)
    ASSERT_EQ(l.tensor.input_scale.empty(), l.tensor.name.find("o_proj") != std::string::npos)
        << l.tensor.name;
  // Each compressed tensor decodes to its model weight exactly, so no per-column factor
  // has to be guessed: the packed weight divides its input by the tensor's own scale.
  const PackedLlama packed(c.model, c.layers, {false});
  EXPECT_EQ(count(packed.paths(), "affine int4"), 14);
  EXPECT_EQ(count(packed.paths(), "asym packed, input divided by its scale"), 12);
  EXPECT_EQ(count(packed.paths(), "inputs scaled per column"), 0);
  expect_same_logits(packed, c.model, 1e-5);
}

// A streamed compression stores the decoded weights in the model's 16-bit dtype: those are
// roundings of the compressed tensors, which the packed kernels still run (the latency of a
// bf16 model's run is the packed layout's, not a dense f16 fallback's).
TEST(PackedLlama, Bf16RoundingsOfTheDecodedWeightsRunPacked) {
  const LlamaModel base = test::random_llama(config(), 8);
  const CompressionResult c = compress(base, "algorithm: rtn\n    bits: 4\n    group_size: 32");
  LlamaModel rounded = c.model;
  for (const CompressedLayer& l : c.layers) {
    Tensor* w = find_weight(rounded, l.tensor.name);
    Tensor b = Tensor::zeros(DType::BF16, w->shape(), l.tensor.name);
    from_f32(DType::BF16, w->as<float>(), b.mutable_data(), size_t(w->numel()));
    *w = std::move(b);
  }
  // One weight one bf16 step off its rounding is no longer the tensor's.
  uint16_t* off = static_cast<uint16_t*>(find_weight(rounded, c.layers[3].tensor.name)->mutable_data());
  off[5] ^= 1;
  const PackedLlama packed(rounded, c.layers, {false});
  EXPECT_EQ(count(packed.paths(), "affine int4"), 13);
  EXPECT_EQ(count(packed.paths(), "does not decode to the model's weight"), 1);
  expect_same_logits(packed, c.model, 2e-2);  // the compressed values, not their roundings
}
