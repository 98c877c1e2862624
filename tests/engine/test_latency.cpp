// Latency measurement: what it runs (clamped to the context), the median, cancel.
#include <gtest/gtest.h>

#include <cmath>

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
