// One fuzz target per parser of untrusted input. A target defines
//   LLVMFuzzerTestOneInput(data, size): parse the bytes the way MCW reads such a file;
//   fuzz_seeds(): valid inputs to start from (written with MCW's own writers or taken from
//   the repository), so that mutations begin past the first checks.
// The contract under test: any input either parses or throws mcw::Error (a one-line
// message naming the file). Anything else (another exception type, a crash, a hang, an
// allocation past the driver's limit) is a finding. Built either with libFuzzer (clang,
// MCW_LIBFUZZER=ON: coverage-guided) or with fuzz_driver.cpp (any compiler: replays the
// seeds and the regression inputs, then mutates them at random for a bounded time).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
std::vector<std::string> fuzz_seeds();

namespace mcw::fuzz {

// A directory of this process's own (under TMPDIR), made on first use.
const std::string& scratch_dir();
// Writes bytes to scratch_dir()/name and returns the path.
std::string write_scratch(const std::string& name, const uint8_t* data, size_t size);
std::string write_scratch(const std::string& name, const std::string& bytes);
// The whole file.
std::string read_bytes(const std::string& path);

}  // namespace mcw::fuzz

namespace mcw::fuzz {
inline size_t accepted = 0;  // inputs that parsed (the driver reports how deep it got)
}

// Runs `body`; an mcw::Error is the refusal the contract allows, everything else escapes.
#define MCW_FUZZ_BODY(body)           \
  try {                               \
    body;                             \
    ++mcw::fuzz::accepted;            \
  } catch (const mcw::Error&) {       \
  }                                   \
  return 0;
