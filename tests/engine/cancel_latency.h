// How soon a job stops after a cancel, for the cancel-latency tests of each job kind.
#pragma once
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "engine/core/progress.h"

namespace mcw::test {

struct CancelLatency {
  double before = 0;   // seconds from the job's start to the cancel
  double latency = 0;  // seconds from the cancel to the job's end
};

// Runs `job`, which must end in Cancelled, and cancels `token` from another thread as soon
// as `ready(seconds since the start)` is true (polled every 0.2 ms).
inline CancelLatency measure_cancel(CancelToken& token, const std::function<bool(double)>& ready,
                                    const std::function<void()>& job) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto since = [&](clock::time_point t) {
    return std::chrono::duration<double>(t - start).count();
  };
  std::atomic<bool> done{false};
  clock::time_point cancelled_at = start;
  std::thread canceller([&] {
    while (!done && !ready(since(clock::now())))
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    cancelled_at = clock::now();
    token.cancel();
  });
  EXPECT_THROW(job(), Cancelled);
  const auto stopped = clock::now();
  done = true;
  canceller.join();
  return {since(cancelled_at), std::chrono::duration<double>(stopped - cancelled_at).count()};
}

}  // namespace mcw::test
