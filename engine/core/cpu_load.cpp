#include "engine/core/cpu_load.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

namespace mcw {

CpuSample cpu_sample() {
  CpuSample s;
  std::ifstream stat("/proc/stat");
  std::string label;
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(stat >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) ||
      label != "cpu")
    return s;
  s.busy = user + nice + system + irq + softirq;
  s.steal = steal;
  s.total = s.busy + idle + iowait + steal;
  // /proc/self/stat: "pid (comm) state ..." with utime and stime the 14th and 15th fields;
  // comm may hold spaces and parentheses, so fields are counted after the last ')'.
  std::ifstream self("/proc/self/stat");
  std::string line;
  if (!std::getline(self, line)) return s;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream fields(line.substr(close + 1));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  s.self = utime + stime;
  s.valid = true;
  return s;
}

double others_cpu_share(const CpuSample& a, const CpuSample& b) {
  if (!a.valid || !b.valid || b.total <= a.total) return 0;
  const double total = double(b.total - a.total);
  const double busy = double(b.busy - a.busy) + double(b.steal - a.steal);
  const double self = b.self >= a.self ? double(b.self - a.self) : 0;
  return std::clamp((busy - self) / total, 0.0, 1.0);
}

}  // namespace mcw
