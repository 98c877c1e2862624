// Who is running a run: the host, its CPU, and an identity for the process that survives
// pid reuse, so that a store opened later can tell a live run from one whose process died.
#pragma once
#include <cstdint>
#include <string>

namespace mcw {

std::string host_name();
std::string cpu_model();  // /proc/cpuinfo's "model name", else "unknown"
int64_t current_pid();

// "<boot id>:<start time in clock ticks>" from /proc, or "" where /proc does not say.
// A pid that now belongs to another process (or the same pid after a reboot) has a
// different tag.
std::string process_tag(int64_t pid);

// False only when the process is certainly gone: kill(pid, 0) reports no such process,
// or the pid now has a different tag. When unsure (no /proc, EPERM) it answers true, so a
// live run is never marked interrupted by mistake.
bool process_alive(int64_t pid, const std::string& tag);

}  // namespace mcw
