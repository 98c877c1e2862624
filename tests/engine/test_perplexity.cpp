// Sliding-window evaluation: the scoring plan against its definition, closed forms for a
// uniform model, and KL/top-1 properties.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

#include "engine/eval/perplexity.h"
#include "llama_test_util.h"
#include "cancel_latency.h"

using namespace mcw;

// Token i first appears in the window starting at b = max(0, ceil((i - W + 1) / S)) * S;
// it is scored there unless it is that window's first token (only possible when S == W).
TEST(EvalWindows, EveryTokenIsScoredOnceWhereItIsNew) {
  for (int64_t n : {1, 2, 5, 17, 100})
    for (int64_t w : {2, 3, 8, 16})
      for (int64_t s = 1; s <= w; ++s) {
        std::vector<int> count(size_t(n), 0);
        for (const EvalWindow& win : eval_windows(n, {w, s})) {
          EXPECT_EQ(win.begin % s, 0);
          EXPECT_LE(win.end - win.begin, w);
          EXPECT_GT(win.first_scored, win.begin);  // never a window's first token
          for (int64_t i = win.first_scored; i < win.end; ++i) count[size_t(i)]++;
        }
        for (int64_t i = 0; i < n; ++i) {
          const int64_t k = i - w + 1 <= 0 ? 0 : (i - w + 1 + s - 1) / s;
          ASSERT_EQ(count[size_t(i)], i == k * s ? 0 : 1) << "n=" << n << " w=" << w << " s=" << s;
        }
      }
}

TEST(EvalWindows, NonOverlappingWindowsSkipEachFirstToken) {
  const auto v = eval_windows(10, {4, 4});
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[1].begin, 4);
  EXPECT_EQ(v[1].first_scored, 5);  // token 4 starts a window and is never scored
  EXPECT_THROW(eval_windows(10, {4, 5}), Error);
  EXPECT_THROW(eval_windows(10, {4, 0}), Error);
}

TEST(Perplexity, UniformModelScoresItsVocabularySize) {
  LlamaModel m = test::random_llama(test::tiny_config(), 2);
  std::memset(m.output.mutable_data(), 0, m.output.nbytes());  // every logit 0
  std::vector<int32_t> toks(50);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = int32_t(i * 7 % 37);
  const EvalResult r = evaluate(m, toks, {16, 8});
  EXPECT_EQ(r.scored, 49);
  EXPECT_NEAR(r.perplexity, 37.0, 1e-9);
}

TEST(Perplexity, MatchesDirectLogProbabilitiesWithoutOverlap) {
  const LlamaModel m = test::random_llama(test::tiny_config(), 9);
  const std::vector<int32_t> toks = {1, 5, 9, 2, 33, 7, 7, 0, 12};
  // One window over everything: mean of -log p(token i | tokens < i) for i >= 1.
  KVCache cache(m.cfg, 16);
  std::vector<float> logits(toks.size() * 37);
  llama_forward(m, toks, cache, logits.data());
  double nll = 0;
  for (size_t i = 1; i < toks.size(); ++i) {
    const float* row = logits.data() + (i - 1) * 37;
    double z = 0;
    for (int j = 0; j < 37; ++j) z += std::exp(double(row[j]));
    nll -= double(row[toks[i]]) - std::log(z);
  }
  EXPECT_NEAR(evaluate(m, toks, {16, 16}).nll, nll / 8, 1e-6);
}

TEST(Perplexity, KlAgainstItselfIsZeroAndAgreementFull) {
  const LlamaModel m = test::random_llama(test::tiny_config(), 4);
  LlamaModel other = test::random_llama(test::tiny_config(), 5);
  std::vector<int32_t> toks(40);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = int32_t(i * 11 % 37);
  const EvalResult same = evaluate(m, toks, {12, 6}, &m);
  EXPECT_NEAR(same.kl, 0.0, 1e-9);
  EXPECT_EQ(same.top1, 1.0);
  const EvalResult diff = evaluate(m, toks, {12, 6}, &other);
  EXPECT_GT(diff.kl, 0.0);
  EXPECT_LT(diff.top1, 1.0);
}

TEST(Perplexity, HonoursCancel) {
  const LlamaModel m = test::random_llama(test::tiny_config(), 4);
  std::vector<int32_t> toks(40, 3);
  CancelToken cancel;
  cancel.cancel();
  EXPECT_THROW(evaluate(m, toks, {8, 8}, nullptr, {}, &cancel), Cancelled);
}

// Cancel reaches inside a window's forward pass (run_cancellable): a model whose one window
// takes about 2 s on a quiet 2-core machine stops within a quarter of a window of the
// cancel (0.15 s measured quiet; without run_cancellable it runs to the window's end, 0.9 of
// it, and fails). The bound is in windows, not seconds, because `ctest -j8` on two cores
// slows this process ~4× (a 9 s window, a 1.04 s cancel: the same quarter holds).
TEST(Perplexity, CancelStopsInsideALongWindow) {
  LlamaConfig c = test::tiny_config(8, 8);
  c.dim = 1024, c.head_dim = 128, c.hidden_dim = 2816, c.n_layers = 8;
  c.vocab_size = 256, c.max_seq_len = 1024;
  const LlamaModel m = test::random_llama(c, 9);
  std::vector<int32_t> toks(2048);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = int32_t(i * 7 % 256);
  using clock = std::chrono::steady_clock;
  const auto w0 = clock::now();
  evaluate(m, std::span<const int32_t>(toks).first(1024), {1024, 1024});
  const double window_s = std::chrono::duration<double>(clock::now() - w0).count();

  CancelToken cancel;
  const test::CancelLatency t = test::measure_cancel(
      cancel, [](double s) { return s >= 0.2; },
      [&] { evaluate(m, toks, {1024, 1024}, nullptr, {}, &cancel); });
  EXPECT_LT(t.latency, 0.25 * window_s) << "a window takes " << window_s << " s";
  RecordProperty("window_seconds", std::to_string(window_s));
  RecordProperty("cancel_latency_seconds", std::to_string(t.latency));
}
