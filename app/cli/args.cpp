#include "app/cli/args.h"

#include <cstdlib>

namespace mcw::cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
           const std::set<std::string>& flags) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), val;
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) val = name.substr(eq + 1), name.resize(eq);
    if (flags.count(name) && !inline_value) {
      flags_.insert(name);
    } else if (valued.count(name)) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) throw UsageError{"option --" + name + " needs a value"};
        val = argv[++i];
      }
      values_[name].push_back(val);
    } else {
      throw UsageError{"unknown option --" + name};
    }
  }
}

std::optional<std::string> Args::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Args::values(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string Args::value_or(const std::string& name, const std::string& fallback) const {
  return value(name).value_or(fallback);
}

long long Args::int_or(const std::string& name, long long fallback) const {
  auto v = value(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end) throw UsageError{"option --" + name + " expects an integer, got '" + *v + "'"};
  return x;
}

int64_t parse_run_id(const std::string& text, const std::string& where) {
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end || v <= 0)
    throw UsageError{(where.empty() ? "" : where + " ") + "'" + text + "' is not a run id (mcw runs list)"};
  return v;
}

double Args::number_or(const std::string& name, double fallback) const {
  auto v = value(name);
  if (!v) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end) throw UsageError{"option --" + name + " expects a number, got '" + *v + "'"};
  return x;
}

std::string first_positional(const std::vector<std::string>& argv,
                             const std::set<std::string>& valued) {
  for (size_t k = 0; k < argv.size(); ++k) {
    const std::string& a = argv[k];
    if (!a.starts_with("--")) return a;
    if (a.find('=') == std::string::npos && valued.count(a.substr(2))) ++k;  // its value
  }
  return {};
}

}  // namespace mcw::cli
