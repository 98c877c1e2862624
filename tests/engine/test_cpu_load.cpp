// The share of the machine other processes take (cpu_load.h): the formula on known
// samples, and a child process spinning while this one sleeps.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "engine/core/cpu_load.h"

using namespace mcw;

TEST(CpuLoad, OthersShareFromTwoSamples) {
  CpuSample a{100, 10, 1000, 40, true}, b{400, 30, 2000, 140, true};
  // (busy 300 + steal 20 − own 100) of 1000 ticks.
  EXPECT_DOUBLE_EQ(others_cpu_share(a, b), 0.22);
  EXPECT_EQ(others_cpu_share(a, a), 0.0);  // no time passed
  CpuSample invalid;
  EXPECT_EQ(others_cpu_share(invalid, b), 0.0);
  CpuSample own = b;
  own.self = a.self + 900;  // more than the machine was busy: clamped
  EXPECT_EQ(others_cpu_share(a, own), 0.0);
}

TEST(CpuLoad, SeesAnotherProcessSpinning) {
  const CpuSample before = cpu_sample();
  if (!before.valid) GTEST_SKIP() << "no /proc here";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(600);
    volatile uint64_t n = 0;
    while (std::chrono::steady_clock::now() < end) n = n + 1;
    _exit(0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double share = others_cpu_share(before, cpu_sample());
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  // One spinning process is a whole CPU of this machine's; other tests only add to it.
  EXPECT_GT(share, 0.5 / double(std::thread::hardware_concurrency()));
}
