// The `mcw` subcommands. Each returns the process exit code and throws mcw::Error for
// problems with input files and cli::UsageError for bad command lines.
#pragma once
#include <string>
#include <vector>

namespace mcw::cli {

struct Command {
  const char* name;
  const char* summary;
  const char* usage;  // full help text for `mcw help <name>`
  int (*run)(const std::vector<std::string>& args);
};

const std::vector<Command>& commands();

int run_inspect(const std::vector<std::string>& args);
extern const char* const kInspectUsage;
int run_train(const std::vector<std::string>& args);
extern const char* const kTrainUsage;

}  // namespace mcw::cli
