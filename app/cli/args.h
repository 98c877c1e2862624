// A small command-line parser shared by every `mcw` subcommand: positionals, `--flag`,
// `--key value` and `--key=value`. Unknown or malformed options are user errors.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace mcw::cli {

class Args {
 public:
  // `valued` lists options that take a value; `flags` those that do not.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
       const std::set<std::string>& flags);

  const std::vector<std::string>& positional() const { return positional_; }
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  std::optional<std::string> value(const std::string& name) const;  // the last one given
  std::vector<std::string> values(const std::string& name) const;   // every one, in order
  std::string value_or(const std::string& name, const std::string& fallback) const;
  long long int_or(const std::string& name, long long fallback) const;
  double number_or(const std::string& name, double fallback) const;

 private:
  std::vector<std::string> positional_;
  std::set<std::string> flags_;
  std::map<std::string, std::vector<std::string>> values_;
};

// The first positional argument of argv, skipping the `valued` options' values (`--key v`);
// empty when there is none. For commands that pick their path by the model before parsing.
std::string first_positional(const std::vector<std::string>& argv,
                             const std::set<std::string>& valued);

// Thrown for bad command lines; main prints it as one line and exits with 1.
struct UsageError {
  std::string message;
};

// A run id as `mcw runs list` shows it (a positive integer); UsageError naming `where` (the
// option, e.g. "export --run"; may be empty) otherwise.
int64_t parse_run_id(const std::string& text, const std::string& where);

}  // namespace mcw::cli
