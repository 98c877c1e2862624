#include "engine/runs/process_identity.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace mcw {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    const size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "unknown" : line.substr(start);
  }
  return "unknown";
}

int64_t current_pid() { return int64_t(getpid()); }

std::string process_tag(int64_t pid) {
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  if (!std::getline(boot, boot_id) || boot_id.empty()) return "";
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(stat, s)) return "";
  // Field 2 (comm) is parenthesised and may hold spaces: count fields after its ')'.
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(s.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i)
    if (i == 22) return boot_id + ":" + field;  // starttime
  return "";
}

bool process_alive(int64_t pid, const std::string& tag) {
  if (pid <= 0 || pid > INT32_MAX) return false;
  if (kill(pid_t(pid), 0) != 0 && errno == ESRCH) return false;
  if (tag.empty()) return true;
  const std::string now = process_tag(pid);
  return now.empty() || now == tag;
}

}  // namespace mcw
