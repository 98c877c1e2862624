// How much memory this process holds, from /proc (Linux). The kernel keeps a peak only of
// the whole resident set (VmHWM), which counts mmap'd weight files a job merely reads; the
// memory a job really needs is its anonymous peak, so PeakMemorySampler polls RssAnon.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace mcw {

struct MemoryUsage {           // bytes; 0 where /proc does not say
  uint64_t resident = 0;       // VmRSS
  uint64_t anonymous = 0;      // RssAnon: heap, stacks, private mappings
  uint64_t file = 0;           // RssFile: mapped files (weights) and code
  uint64_t peak_resident = 0;  // VmHWM
};

MemoryUsage read_memory_usage();
std::string human_bytes(uint64_t bytes);  // "3.81 GiB", "64.00 KiB", "512 B"
// MemAvailable from /proc/meminfo: what can still be allocated without swapping; 0 when unknown.
uint64_t memory_available();

// While alive, a background thread reads RssAnon every `period` and keeps the largest
// value (one small /proc read each time: tens of microseconds).
class PeakMemorySampler {
 public:
  explicit PeakMemorySampler(std::chrono::milliseconds period = std::chrono::milliseconds(25));
  ~PeakMemorySampler();
  PeakMemorySampler(const PeakMemorySampler&) = delete;
  PeakMemorySampler& operator=(const PeakMemorySampler&) = delete;

  // The largest RssAnon seen so far, including a sample taken by this call.
  uint64_t peak_anonymous();
  void stop();  // joins the thread; idempotent
  // Samples taken by the background thread so far (lets a test wait for one).
  uint64_t samples() const { return samples_.load(std::memory_order_relaxed); }

 private:
  void sample();
  std::chrono::milliseconds period_;
  std::atomic<uint64_t> peak_{0}, samples_{0};
  std::mutex m_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mcw
