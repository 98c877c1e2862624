// Latency measurement: what it runs (clamped to the context), the median, cancel.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "cancel_latency.h"
#include "engine/core/error.h"
#include "engine/eval/latency.h"
#include "llama_test_util.h"

using namespace mcw;

TEST(Latency, Median) {
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(median({5}), 5);
  EXPECT_TRUE(std::isnan(median({})));
}

TEST(Latency, FitsTheContextAndReportsPositiveNumbers) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.max_seq_len = 20;
  const LlamaModel m = test::random_llama(c, 1);
  int events = 0;
  const LatencyResult r = measure_latency(m, {64, 32, 3}, [&](const ProgressEvent&) { ++events; });
  EXPECT_EQ(r.decode, 10);  // at most half the context
  EXPECT_EQ(r.prefill, 10);
  EXPECT_EQ(events, 3);
  EXPECT_TRUE(std::isfinite(r.ms_per_token) && r.ms_per_token > 0);
  EXPECT_TRUE(std::isfinite(r.prefill_tokens_per_s) && r.prefill_tokens_per_s > 0);
  c.max_seq_len = 1;
  EXPECT_THROW(measure_latency(test::random_llama(c, 1)), Error);
  CancelToken cancel;
  cancel.cancel();
  EXPECT_THROW(measure_latency(m, {}, {}, &cancel), Cancelled);
}

// A repetition at real size (a prefill and a few dozen decode steps through 8 B) runs for
// tens of seconds: a cancel must reach inside it, not wait for the next repetition.
TEST(Latency, CancelStopsInsideARepetition) {
  LlamaConfig c = test::tiny_config(8, 8);
  c.dim = 1024, c.head_dim = 128, c.hidden_dim = 4096, c.n_layers = 2;
  c.vocab_size = 256, c.max_seq_len = 1024;
  const LlamaModel m = test::random_llama(c, 7);
  const LatencyOptions one{768, 24, 1};
  const auto t0 = std::chrono::steady_clock::now();
  measure_latency(m, one);
  const double repetition =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const double at : {0.2, 0.7}) {  // in the prefill, and among the decode steps
    CancelToken cancel;
    const test::CancelLatency t = test::measure_cancel(
        cancel, [&](double s) { return s > at * repetition; },
        [&] {
          measure_latency(m, {768, 24, 3}, {}, &cancel);
        });
    EXPECT_LT(t.latency, 0.15 * repetition)
        << "cancelled at " << at << " of a " << repetition << " s repetition";
    RecordProperty(at < 0.5 ? "latency_in_prefill" : "latency_in_decode",
                   std::to_string(t.latency));
  }
  RecordProperty("repetition_seconds", std::to_string(repetition));
}
