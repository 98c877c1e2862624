// Resource estimates: the shape table against the loaded model, the memory and FLOP
// formulas against sums worked out by hand for a tiny model, and the memory bound against
// the heap that compress_llama really uses (glibc's mallinfo2, sampled while it runs).
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cmath>
#include <random>
#include <thread>

#include "sanitizer_skip.h"
#include "engine/compress/compress_llama.h"
#include "engine/compress/resource_estimate.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

// dim 32, 4 heads of 8, 2 kv heads (kv dim 16), hidden 64, 2 layers, vocab 37, untied.
LlamaConfig small_config() {
  LlamaConfig c = test::tiny_config(4, 2);
  c.hidden_dim = 64;
  return c;
}

Recipe recipe(const std::string& yaml) { return parse_recipe(yaml, "test.yaml"); }

}  // namespace

TEST(ResourceEstimate, ShapesMatchTheModel) {
  const LlamaConfig c = small_config();
  LlamaModel m = test::random_llama(c, 3);
  const ModelShape s = model_shape(c);
  EXPECT_EQ(s.parameters(), m.parameter_count());
  std::vector<std::string> names;
  for (const auto& [n, t] : m.named_tensors()) names.push_back(n);
  EXPECT_EQ(s.tensor_names, names);
  ASSERT_EQ(s.linears.size(), 14u);
  for (const LinearShape& l : s.linears) {
    const Tensor* t = nullptr;
    for (const auto& [n, w] : m.named_tensors())
      if (n == l.name) t = w;
    ASSERT_NE(t, nullptr) << l.name;
    EXPECT_EQ(t->dim(0), l.rows) << l.name;
    EXPECT_EQ(t->dim(1), l.cols) << l.name;
  }
}

TEST(ResourceEstimate, RtnMatchesHandWorkedSums) {
  const ModelShape s = model_shape(small_config());
  // Parameters: per layer q 32·32 + k 16·32 + v 16·32 + o 32·32 + gate/up 2·64·32 + down
  // 32·64 = 9216, twice; embeddings and output 2·37·32; norms 2·2·32 + 32.
  const double P = 2 * 9216 + 2 * 37 * 32 + 4 * 32 + 32;
  ASSERT_EQ(double(s.parameters()), P);
  EstimateSettings set;
  set.eval_tokens = 100;
  set.gflops = 2.0;
  const ResourceEstimate e = estimate_resources(
      s, recipe("stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n"), set);
  EXPECT_EQ(e.base_bytes, uint64_t(4 * P));
  EXPECT_EQ(e.working_bytes, uint64_t(4 * P));
  // 4-bit codes (n/2 bytes) plus an f32 scale and zero per 32 columns of each row:
  // q 512+256, k 256+128, v 256+128, o 512+256, gate 1024+512, up 1024+512, down 1024+512.
  const double per_layer = 768 + 384 + 384 + 768 + 1536 + 1536 + 1536;
  EXPECT_EQ(e.compressed_bytes, uint64_t(2 * 2 * per_layer));  // two layers, kept twice
  // The largest linear (2048 weights): codes and an f32 work copy (6 bytes a weight), the
  // decoded weight and relative_error's three f32 buffers (16 bytes a weight).
  EXPECT_EQ(e.transient_bytes, uint64_t(22 * 2048));
  EXPECT_EQ(e.peak_bytes, e.base_bytes + e.working_bytes + e.compressed_bytes + e.transient_bytes);
  // 10 FLOPs a weight to round, 3 for the plain relative error; evaluation: compressed and
  // baseline model, 2 FLOPs per parameter per token each.
  EXPECT_DOUBLE_EQ(e.compress_flops, 13.0 * 2 * 9216);
  EXPECT_DOUBLE_EQ(e.eval_flops, 2 * 2 * P * 100);
  EXPECT_DOUBLE_EQ(e.seconds, (13.0 * 2 * 9216 + 2 * 2 * P * 100) / 2e9);
}

TEST(ResourceEstimate, GptqOneLayerMatchesHandWorkedSums) {
  const ModelShape s = model_shape(small_config());
  EstimateSettings set;
  set.gflops = 1.0;
  const ResourceEstimate e = estimate_resources(
      s,
      recipe("calibration: {windows: 4, window: 16}\nstages:\n  - algorithm: gptq\n"
             "    targets: model.layers.0.mlp.down_proj.weight\n    group_size: 32\n"
             "    act_order: true\n"),
      set);
  const double r = 32, c = 64, n = r * c, N = 4 * 16;
  // Codes n/2, scale+zero per 32 columns per row, act-order column map 4·c (dynamic
  // groups); kept twice.
  EXPECT_EQ(e.compressed_bytes, uint64_t(2 * (n / 2 + 4 * r * 2 * 2 + 4 * c)));
  // GPTQ after the in-place inverse Cholesky: the f64 H copy holding it (8c²), the f32
  // factor (4c²), working weights (4n), codes (n), block errors (4·r·64), 2 groups of
  // params (16 bytes each per row); then the decoded weight and relative_error (16n, 4c²);
  // the layer statistics (8c² + 12c) and the accumulation chunk (4c²); the calibration
  // buffers: hidden and normed input [N, 32] and the block activations [N, 64], tokens.
  const double gptq = 8 * c * c + 4 * c * c + 4 * n + n + 4 * r * 64 + 16 * r * 2;
  const double stats = 8 * c * c + 12 * c + 4 * c * c;
  const double calib = 4 * N * (2 * 32 + 64) + 4 * N;
  EXPECT_EQ(e.transient_bytes, uint64_t(gptq + 16 * n + 4 * c * c + stats + calib));
  // Cholesky and inverse c³/3 each, the update r·c², 10 a weight, relative_error 2 × 2rc²;
  // XᵀX 2Nc²; the calibration forward over every linear (2·N·18432) and attention.
  const double layer = 2 * c * c * c / 3 + r * c * c + 10 * n + 4 * r * c * c;
  const double forward = 2 * N * 18432 + 2 * N * 16 * 32 * 2;
  EXPECT_NEAR(e.compress_flops, layer + 2 * N * c * c + forward, 1e-6);
  EXPECT_EQ(e.eval_flops, 0);
}

TEST(ResourceEstimate, GrowsWithCalibrationAndLaterStagesReplaceEarlierOnes) {
  const ModelShape s = model_shape(small_config());
  EstimateSettings set;
  set.gflops = 1;
  const auto small = estimate_resources(
      s, recipe("calibration: {windows: 2, window: 16}\nstages:\n  - algorithm: gptq\n"), set);
  const auto big = estimate_resources(
      s, recipe("calibration: {windows: 8, window: 16}\nstages:\n  - algorithm: gptq\n"), set);
  EXPECT_GT(big.transient_bytes, small.transient_bytes);
  EXPECT_GT(big.compress_flops, small.compress_flops);
  // SVD after RTN: the stored form of every linear is the low-rank one.
  const auto svd_only =
      estimate_resources(s, recipe("stages:\n  - algorithm: svd\n    rank: 4\n"), set);
  const auto both = estimate_resources(
      s, recipe("stages:\n  - algorithm: rtn\n  - algorithm: svd\n    rank: 4\n"), set);
  EXPECT_EQ(both.compressed_bytes, svd_only.compressed_bytes);
  EXPECT_GT(both.compress_flops, svd_only.compress_flops);
}

TEST(ResourceEstimate, MeasuredGemmSpeedIsPositiveAndStable) {
  const double g = measured_gemm_gflops();
  EXPECT_GT(g, 0);
  EXPECT_EQ(g, measured_gemm_gflops());  // measured once
}

namespace {
size_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}
}  // namespace

// The bound against reality: the heap compress_llama adds (sampled every 100 µs; a sample
// can only miss a peak, never invent one) stays under the estimate, and what it still holds
// when it returns (the working copy and the compressed tensors) is what the estimate says.
TEST(ResourceEstimate, BoundsTheHeapCompressLlamaUses) {
  MCW_SKIP_UNDER_ASAN();
  LlamaConfig c = small_config();
  c.dim = 128, c.n_heads = 4, c.n_kv_heads = 4, c.head_dim = 32, c.hidden_dim = 512;
  c.vocab_size = 64;
  const LlamaModel base = test::random_llama(c, 7);
  std::mt19937 rng(9);
  std::vector<int32_t> tokens(2000);
  for (auto& t : tokens) t = int32_t(rng() % 64);
  const Recipe r = recipe(
      "calibration: {windows: 4, window: 32}\nstages:\n  - algorithm: gptq\n    group_size: 32\n");
  EstimateSettings set;
  set.gflops = 1;
  const ResourceEstimate e = estimate_resources(model_shape(c), r, set);

  // The GEMM keeps packing scratch per thread for reuse; a first run allocates it on the
  // threads that will do the work, so that what the measured run keeps is its own.
  for (int i = 0; i < 2; ++i) compress_llama(base, r, tokens, CompressOptions{});
  malloc_trim(0);
  const size_t before = heap_in_use();
  std::atomic<bool> done{false};
  std::atomic<size_t> peak{before};
  std::thread sampler([&] {
    while (!done.load()) {
      peak.store(std::max(peak.load(), heap_in_use()));
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
  size_t held = 0;
  {
    CompressOptions opt;
    const CompressionResult out = compress_llama(base, r, tokens, opt);
    held = heap_in_use();
    done = true;
    sampler.join();
    ASSERT_EQ(out.layers.size(), 14u);
  }
  const double used = double(peak.load()) - double(before);
  const double estimated = double(e.peak_bytes - e.base_bytes);  // the base was loaded before
  EXPECT_LE(used, estimated) << "estimate " << estimated << " bytes, measured " << used;
  EXPECT_GT(used, 0.25 * estimated) << "the estimate is far too loose";
  // Held on return: the working copy and one copy of the compressed tensors.
  const double kept = double(held) - double(before);
  const double expected = double(e.working_bytes) + double(e.compressed_bytes) / 2;
  EXPECT_GT(kept, 0.9 * expected);
  EXPECT_LT(kept, 1.25 * expected + 65536);
}

// Streamed (mcw compress): the mapped weights are not counted, one block is in f32, the last
// stage's compressed layers are held one block at a time, and the calibration hidden states
// take the activation dtype. So the estimate does not grow with the number of blocks, except
// for earlier stages' layers (kept until the last stage writes them) and the FLOPs.
TEST(ResourceEstimate, StreamedHoldsOneBlock) {
  const std::string rtn = "stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n";
  EstimateSettings set;
  set.gflops = 2.0;
  set.streamed = true;
  LlamaConfig c = small_config();
  const ResourceEstimate two = estimate_resources(model_shape(c), recipe(rtn), set);
  // Norms (2 per block and the final one), f32; one block's linears (9216), f32; one
  // block's compressed layers (the hand-worked sum of RtnMatchesHandWorkedSums), once.
  EXPECT_EQ(two.base_bytes, uint64_t(4 * (4 * 32 + 32)));
  EXPECT_EQ(two.working_bytes, uint64_t(4 * 9216));
  EXPECT_EQ(two.compressed_bytes, uint64_t(768 + 384 + 384 + 768 + 1536 + 1536 + 1536));
  EXPECT_EQ(two.transient_bytes, uint64_t(22 * 2048));
  const uint64_t sums = two.base_bytes + two.working_bytes + two.compressed_bytes + two.transient_bytes;
  EXPECT_EQ(two.slack_bytes, uint64_t(std::ceil(0.1 * double(sums) + double(64 << 20))));
  EXPECT_EQ(two.peak_bytes, sums + two.slack_bytes);
  c.n_layers = 8;
  const ResourceEstimate eight = estimate_resources(model_shape(c), recipe(rtn), set);
  EXPECT_EQ(eight.working_bytes, two.working_bytes);
  EXPECT_EQ(eight.compressed_bytes, two.compressed_bytes);
  EXPECT_EQ(eight.base_bytes - two.base_bytes, uint64_t(4 * 6 * 2 * 32));  // 6 more blocks' norms
  EXPECT_DOUBLE_EQ(eight.compress_flops, 4 * two.compress_flops);

  // An earlier stage's layers stay until the last stage writes them: all 8 blocks' of them.
  const ResourceEstimate staged = estimate_resources(
      model_shape(c), recipe("stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n"
                             "    targets: ['*.mlp.*']\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n"
                             "    targets: ['*.self_attn.*']\n"),
      set);
  EXPECT_EQ(staged.compressed_bytes, uint64_t(8 * (3 * 1536) + 768 + 384 + 384 + 768));

  // Calibrated: the hidden states of every token in the activation dtype (N × dim).
  const std::string gptq = "calibration: {windows: 4, window: 16}\nstages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n";
  const ResourceEstimate f32 = estimate_resources(model_shape(c), recipe(gptq), set);
  set.activation_bytes = 2;
  const ResourceEstimate bf16 = estimate_resources(model_shape(c), recipe(gptq), set);
  EXPECT_EQ(f32.transient_bytes - bf16.transient_bytes, uint64_t(2 * 64 * 32));
  set.streamed = false;
  EXPECT_LT(f32.peak_bytes - f32.slack_bytes, estimate_resources(model_shape(c), recipe(gptq), set).peak_bytes);
}

// A structured stage slices every layer at once, so even the streamed run holds the whole
// model in f32 while it runs.
TEST(ResourceEstimate, StreamedStructuredHoldsTheWholeModel) {
  EstimateSettings set;
  set.gflops = 2.0;
  set.streamed = true;
  const ModelShape s = model_shape(small_config());
  const ResourceEstimate e = estimate_resources(
      s, recipe("calibration: {windows: 2, window: 8}\nstages:\n  - algorithm: channels\n    fraction: 0.25\n"), set);
  EXPECT_EQ(e.working_bytes, uint64_t(4 * double(s.parameters())));
}

// A project run keeps every compressed layer for its latency measurement and packs them once
// more, beside two windows of logits: more than the plain streamed compression holds.
TEST(ResourceEstimate, ProjectRunKeepsTheCompressedLayersForLatency) {
  const std::string rtn = "stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n";
  EstimateSettings set;
  set.gflops = 2.0;
  set.streamed = true;
  LlamaConfig c = small_config();
  c.n_layers = 8;
  const ResourceEstimate plain = estimate_resources(model_shape(c), recipe(rtn), set);
  set.run_eval_window = 16;
  const ResourceEstimate run = estimate_resources(model_shape(c), recipe(rtn), set);
  const uint64_t block = 768 + 384 + 384 + 768 + 1536 + 1536 + 1536;  // StreamedHoldsOneBlock's
  EXPECT_EQ(plain.compressed_bytes, block);
  EXPECT_EQ(plain.evaluation_bytes, 0u);
  EXPECT_EQ(run.compressed_bytes, 8 * block);  // all of them, by the end of the compression
  uint64_t largest = 0;  // weights of the widest linear
  for (const LinearShape& l : model_shape(c).linears) largest = std::max(largest, uint64_t(l.rows * l.cols));
  EXPECT_EQ(run.evaluation_bytes, 2 * 8 * block + uint64_t(2 * 4 * 16 * c.vocab_size) + 10 * largest);
  const uint64_t compress = run.base_bytes + run.working_bytes + run.compressed_bytes + run.transient_bytes;
  const uint64_t phase = std::max(compress, run.base_bytes + run.evaluation_bytes);
  EXPECT_EQ(run.peak_bytes, phase + run.slack_bytes);
  EXPECT_GT(run.peak_bytes, plain.peak_bytes);
}

// A recovery section adds its phase: the hand-worked sums for LoRA (the streamed student:
// saved block inputs, one block's activations and weights, a window's logits, the
// teacher's probabilities, the adapters with gradient and moments), for QAT (the f32
// student and its copy, every layer's activations, latent copies of every linear), and its
// FLOPs to the duration.
TEST(ResourceEstimate, RecoveryAddsItsPhase) {
  const ModelShape s = model_shape(small_config());
  const double P = double(s.parameters());
  EstimateSettings set;
  set.gflops = 1.0;
  const std::string stages = "stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 32\n";
  const ResourceEstimate plain = estimate_resources(s, recipe(stages), set);
  const ResourceEstimate lora = estimate_resources(
      s, recipe(stages + "recovery: {steps: 10, batch: 2, window: 16, rank: 4, eval_every: 5, eval_windows: 3}\n"), set);
  const ResourceEstimate qat = estimate_resources(
      s, recipe(stages + "recovery: {method: qat, steps: 10, batch: 2, window: 16, eval_every: 5, eval_windows: 3}\n"), set);
  // Activations per layer and row: 6·32 + 2·(32 + 16) + 4·64 = 544, softmax 2·4·16·16 per
  // layer; logits 3·32·37. LoRA: rank 4 · (32+32 + 16+32 + 16+32 + 32+32 + 64+32 + 64+32 + 32+64 = 512)
  // per layer. QAT: the 9216 linear weights per layer.
  // LoRA's streamed student: 2 saved block inputs of N·32, one block's activations twice,
  // its 9216 weights twice, 4·N·32 of residual stream, a window's two logit arrays 2·16·37,
  // a head tile of 37·32, the teacher's probabilities for the batch and 3 held-out windows.
  const double N = 32, block = N * 544 + 2 * 4 * 16 * 16;
  const double streamed = 2 * N * 32 + 2 * block + 2 * 9216 + 4 * N * 32 + 2 * 16 * 37 +
                          37 * 32 + (N + 3 * 16) * 37;
  EXPECT_EQ(lora.recovery_bytes, uint64_t(4 * (streamed + 4 * 2 * 4.0 * 512)));
  const double acts = 2 * block + 3 * N * 37;
  EXPECT_EQ(qat.recovery_bytes, uint64_t(4 * (2 * P + acts + 4 * 2 * 9216.0)));
  EXPECT_EQ(lora.peak_bytes, std::max(plain.peak_bytes, lora.base_bytes + lora.compressed_bytes +
                                                             lora.recovery_bytes));
  EXPECT_DOUBLE_EQ(lora.recovery_flops, 10 * 8 * P * N + 3 * 2 * P * 16 * 3);
  EXPECT_NEAR(lora.seconds - plain.seconds, lora.recovery_flops / 1e9, 1e-12);
  EXPECT_EQ(plain.recovery_bytes, 0u);
}
