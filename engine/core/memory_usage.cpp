#include "engine/core/memory_usage.h"

#include <cstdio>
#include <cstring>
#include <string_view>

namespace mcw {

namespace {

// "Key:   1234 kB" lines; reads the file once with stdio (no allocation in the loop).
template <class Fn>
void for_each_kb_line(const char* path, Fn fn) {
  std::FILE* f = std::fopen(path, "re");
  if (!f) return;
  char line[256];
  while (std::fgets(line, sizeof line, f)) {
    const char* colon = std::strchr(line, ':');
    if (!colon) continue;
    unsigned long long kb = 0;
    if (std::sscanf(colon + 1, " %llu", &kb) == 1)
      fn(std::string_view(line, size_t(colon - line)), uint64_t(kb) * 1024);
  }
  std::fclose(f);
}

}  // namespace

std::string human_bytes(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

MemoryUsage read_memory_usage() {
  MemoryUsage u;
  for_each_kb_line("/proc/self/status", [&](std::string_view key, uint64_t bytes) {
    if (key == "VmRSS")
      u.resident = bytes;
    else if (key == "RssAnon")
      u.anonymous = bytes;
    else if (key == "RssFile")
      u.file = bytes;
    else if (key == "VmHWM")
      u.peak_resident = bytes;
  });
  return u;
}

uint64_t memory_available() {
  uint64_t v = 0;
  for_each_kb_line("/proc/meminfo", [&](std::string_view key, uint64_t bytes) {
    if (key == "MemAvailable") v = bytes;
  });
  return v;
}

PeakMemorySampler::PeakMemorySampler(std::chrono::milliseconds period) : period_(period) {
  sample();
  thread_ = std::thread([this] {
    std::unique_lock lock(m_);
    while (!cv_.wait_for(lock, period_, [this] { return stopping_; })) {
      sample();
      samples_.fetch_add(1, std::memory_order_relaxed);
    }
  });
}

PeakMemorySampler::~PeakMemorySampler() { stop(); }

void PeakMemorySampler::sample() {
  const uint64_t now = read_memory_usage().anonymous;
  uint64_t seen = peak_.load(std::memory_order_relaxed);
  while (now > seen && !peak_.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
  }
}

uint64_t PeakMemorySampler::peak_anonymous() {
  sample();
  return peak_.load(std::memory_order_relaxed);
}

void PeakMemorySampler::stop() {
  {
    std::lock_guard lock(m_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace mcw
