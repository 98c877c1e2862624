#include "app/cli/format.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <exception>

#include "app/cli/args.h"

namespace mcw::cli {

uint64_t parse_bytes(const std::string& text, const std::string& option) {
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
  }
  std::string unit = text.substr(used);
  for (char& c : unit) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (unit.ends_with("ib")) unit.resize(unit.size() - 2);
  else if (unit.size() == 2 && unit[1] == 'b') unit.resize(1);
  static const std::string units = "kmgt";
  const size_t u = unit.empty() ? std::string::npos : units.find(unit);
  if (!(v >= 0) || (!unit.empty() && (unit.size() != 1 || u == std::string::npos)) || v > 1e18)
    throw UsageError{"--" + option + " takes a size such as 8G, 512M or 4096 (bytes), not '" + text + "'"};
  return uint64_t(v * std::pow(1024.0, unit.empty() ? 0 : double(u + 1)));
}

std::string human_count(uint64_t n) {
  static const char* units[] = {"", " K", " M", " B", " T"};
  double v = double(n);
  int u = 0;
  while (v >= 1000 && u < 4) v /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f%s" : "%.0f%s", v, units[u]);
  return buf;
}

std::string short_float(double v) {
  if (std::isnan(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string human_duration(double s) {
  char buf[32];
  const long t = long(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

}  // namespace mcw::cli
