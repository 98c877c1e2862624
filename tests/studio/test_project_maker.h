// Writes a small project for the studio's tests and screenshots: a random tiny llama
// model in llama2.c format, an English-ish evaluation text and the .mcwproj beside them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mcw::test {

struct TestProjectOptions {
  int vocab = 256;               // byte tokens need >= 256
  int64_t text_bytes = 4000;     // evaluation text length
  int64_t window = 64, stride = 64;
  int64_t max_tokens = 0;
  bool write_model = true;       // false: the project points to a model that is missing
  uint32_t seed = 1;
};

// Returns the .mcwproj path: <dir>/<name>.mcwproj, model at <dir>/models/tiny.bin, text at
// <dir>/data/eval.txt. Creates <dir> if needed.
std::string make_test_project(const std::string& dir, const std::string& name,
                              const TestProjectOptions& options = {});

// A real sensitivity scan of the project's model, by brute force, into its run store's
// cache: every linear compressed alone with RTN (per-channel) at each of `bits`, KL and
// perplexity against the original over the first `tokens` bytes of the evaluation text.
// Settings are named "rtn-w<bits>". Returns the number of entries written.
int write_sensitivity_cache(const std::string& project_file, const std::vector<int>& bits,
                            int64_t tokens = 2000);

}  // namespace mcw::test
