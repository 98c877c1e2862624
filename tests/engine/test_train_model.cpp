// The whole-model training forward and backward: loss against engine/model's inference
// forward, gradients against finite differences, gradient accumulation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/train/llama_backprop.h"
#include "engine/train/trainer.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

// Mean next-token NLL of each window through llama_forward (KV cache, one window at a
// time), log-softmax in double.
double inference_nll(const LlamaModel& m, const std::vector<int32_t>& windows, int64_t B,
                     int64_t T) {
  const int64_t V = m.cfg.vocab_size;
  std::vector<float> logits(size_t(T * V));
  double sum = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* w = windows.data() + b * (T + 1);
    KVCache cache(m.cfg, T);
    llama_forward(m, std::span<const int32_t>(w, size_t(T)), cache, logits.data());
    for (int64_t t = 0; t < T; ++t) {
      const float* row = logits.data() + t * V;
      double mx = row[0], z = 0;
      for (int64_t j = 1; j < V; ++j) mx = std::max(mx, double(row[j]));
      for (int64_t j = 0; j < V; ++j) z += std::exp(double(row[j]) - mx);
      sum += mx + std::log(z) - row[w[t + 1]];
    }
  }
  return sum / double(B * T);
}

struct Variant {
  const char* name;
  LlamaConfig cfg;
};

std::vector<Variant> variants() {
  auto with_bias = [](LlamaConfig c) {
    c.qkv_bias = true;
    return c;
  };
  return {{"gqa", test::tiny_config(4, 2)},
          {"mha_tied", test::tiny_config(2, 2, /*tied=*/true)},
          {"mqa_bias", with_bias(test::tiny_config(4, 1))},
          {"gqa_bias", with_bias(test::tiny_config(4, 2))}};
}

}  // namespace

TEST(TrainForward, LossEqualsInferenceNll) {
  for (const Variant& v : variants()) {
    const LlamaModel m = test::random_llama(v.cfg, 11);
    const int64_t B = 3, T = 9;
    const auto windows = test::random_tokens(size_t(B * (T + 1)), v.cfg.vocab_size, 12);
    LlamaActivations act;
    const double loss = llama_train_forward(m, windows, B, T, act);
    // Same kernels in the same order: only the GEMM's row blocking may differ.
    EXPECT_NEAR(loss, inference_nll(m, windows, B, T), 1e-5 * loss) << v.name;
    EXPECT_GT(loss, 0.5) << v.name;  // a random model is far from certain
  }
}

TEST(TrainForward, RejectsTokensOutsideTheVocabulary) {
  const LlamaModel m = test::random_llama(test::tiny_config(), 1);
  std::vector<int32_t> w = test::random_tokens(10, m.cfg.vocab_size, 2);
  w[9] = int32_t(m.cfg.vocab_size);
  LlamaActivations act;
  EXPECT_THROW(llama_train_forward(m, w, 1, 9, act), Error);
  EXPECT_THROW(llama_train_forward(m, w, 2, 9, act), Error);  // wrong token count
}

// The whole model's gradient in f32 against central differences of the f32 loss, for a
// few entries of every tensor. The loss (~3.6) carries rounding of ~1e-6 relative, i.e.
// ~4e-6 absolute; with eps = 2e-2 that is ~1e-4 in the difference quotient at worst, and
// the truncation error (eps² · L''' / 6, weights ~0.1..1) is smaller (measured worst error:
// 2.4e-5). Over half the checked gradients exceed 1e-3 (asserted below), so with the tolerance
// 1e-4 + 2 % of |g| a wrong backward term misses by a sizeable fraction of the gradient.
TEST(BackwardModel, MatchesFiniteDifferences) {
  for (const Variant& v : variants()) {
    LlamaModel m = test::random_llama(v.cfg, 21);
    const int64_t B = 2, T = 6;
    const auto windows = test::random_tokens(size_t(B * (T + 1)), v.cfg.vocab_size, 22);
    LlamaActivations act;
    llama_train_forward(m, windows, B, T, act);
    LlamaModel g = zeros_like(m);
    llama_train_backward(m, act, 1.0, g);

    std::mt19937 rng(23);
    auto weights = m.named_tensors();
    auto grads = g.named_tensors();
    double worst = 0;
    size_t large = 0;  // entries whose gradient dwarfs the absolute tolerance
    for (size_t i = 0; i < weights.size(); ++i) {
      float* w = weights[i].second->mutable_as<float>();
      const float* gw = grads[i].second->as<float>();
      std::uniform_int_distribution<int64_t> pick(0, weights[i].second->numel() - 1);
      for (int rep = 0; rep < 3; ++rep) {
        // For the embedding, pick entries of rows that occur in the batch.
        int64_t j = pick(rng);
        if (weights[i].first == "model.embed_tokens.weight")
          j = int64_t(windows[size_t(rep)]) * v.cfg.dim + j % v.cfg.dim;
        const float keep = w[j], eps = 2e-2f;
        w[j] = keep + eps;
        const double up = llama_train_forward(m, windows, B, T, act);
        w[j] = keep - eps;
        const double down = llama_train_forward(m, windows, B, T, act);
        w[j] = keep;
        const double fd = (up - down) / (2.0 * eps);
        worst = std::max(worst, std::abs(fd - gw[j]));
        if (std::abs(fd) > 1e-3) ++large;
        EXPECT_NEAR(gw[j], fd, 1e-4 + 0.02 * std::abs(fd))
            << v.name << " " << weights[i].first << "[" << j << "]";
      }
    }
    testing::Test::RecordProperty(v.name, std::to_string(worst));
    testing::Test::RecordProperty(std::string(v.name) + "_large",
                                  std::to_string(large) + "/" + std::to_string(3 * weights.size()));
    EXPECT_GT(2 * large, 3 * weights.size()) << v.name;  // over half
  }
}

TEST(BackwardModel, GradientsAreZeroedAndAccumulated) {
  const LlamaModel m = test::random_llama(test::tiny_config(), 31);
  const auto windows = test::random_tokens(2 * 7, m.cfg.vocab_size, 32);
  LlamaActivations act;
  llama_train_forward(m, windows, 2, 6, act);
  LlamaModel once = zeros_like(m), twice = zeros_like(m);
  llama_train_backward(m, act, 1.0, once);
  llama_train_backward(m, act, 0.5, twice);
  llama_train_backward(m, act, 0.5, twice);
  auto a = once.named_tensors();
  auto b = twice.named_tensors();
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t j = 0; j < a[i].second->numel(); ++j)
      ASSERT_NEAR(a[i].second->as<float>()[j], b[i].second->as<float>()[j],
                  1e-6 + 1e-5 * std::abs(a[i].second->as<float>()[j]))
          << a[i].first;
  fill_zero(once);
  EXPECT_EQ(global_grad_norm(once), 0.0);
}

TEST(TrainAccumulation, TwoMicroBatchesEqualOneBatchOfTwiceTheSize) {
  const LlamaModel m = test::random_llama(test::tiny_config(4, 2), 41);
  const int64_t B = 4, T = 7;
  const auto windows = test::random_tokens(size_t(B * (T + 1)), m.cfg.vocab_size, 42);
  LlamaModel whole = zeros_like(m), split = zeros_like(m);
  const double l1 = accumulate_gradients(m, windows, B, T, 1, whole);
  const double l2 = accumulate_gradients(m, windows, B, T, 2, split);
  EXPECT_NEAR(l1, l2, 1e-6 * l1);
  auto a = whole.named_tensors();
  auto b = split.named_tensors();
  double max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t j = 0; j < a[i].second->numel(); ++j) {
      const float x = a[i].second->as<float>()[j], y = b[i].second->as<float>()[j];
      max_abs = std::max(max_abs, double(std::abs(x)));
      // Only the order of f32 summation over rows differs.
      ASSERT_NEAR(x, y, 1e-7 + 1e-4 * std::abs(x)) << a[i].first << "[" << j << "]";
    }
  EXPECT_GT(max_abs, 1e-3);  // the gradients are not trivially zero
  EXPECT_THROW(accumulate_gradients(m, windows, B, T, 3, split), Error);
}
