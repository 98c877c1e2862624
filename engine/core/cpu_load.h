// How busy the rest of the machine was while something ran: the share of all CPUs' time
// that went to other processes, and in a VM to the hypervisor (steal), between two samples
// of /proc/stat and /proc/self/stat. A latency taken while that share is high says more
// about the neighbours than about the model (issue: latency a user can trust).
#pragma once
#include <cstdint>

namespace mcw {

struct CpuSample {
  uint64_t busy = 0;   // clock ticks all CPUs spent busy (user, nice, system, irq, softirq)
  uint64_t steal = 0;  // ticks taken by the hypervisor
  uint64_t total = 0;  // all ticks, idle included
  uint64_t self = 0;   // ticks this process spent (utime + stime)
  bool valid = false;  // false where /proc cannot be read
};

CpuSample cpu_sample();

// Share in [0, 1] of the machine's CPU time between a and b that was neither idle nor this
// process's own; 0 when either sample is invalid or no time passed.
double others_cpu_share(const CpuSample& a, const CpuSample& b);

}  // namespace mcw
