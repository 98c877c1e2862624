// The driver for builds without libFuzzer: replays the target's seeds and every file
// named on the command line (directories: every file in them, the kept regression
// inputs), then mutates the seeds at random for --seconds (deterministic for a --seed).
// Not coverage-guided: the CI's bounded smoke test of each parser, and the regression
// runner; coverage-guided fuzzing needs clang and MCW_LIBFUZZER=ON (docs/RELIABILITY.md).
// A crash, an abort (an exception other than mcw::Error ends in std::terminate), a hang
// past --timeout, an allocation past --max-memory in all, or one allocation past 16 MiB +
// --alloc-factor (64) times the input's size writes the input to fuzz-crash-<pid>.bin in
// the working directory and says so.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "fuzz_target.h"

namespace {

const std::string* g_input = nullptr;  // what is being run, for the crash handler
char g_crash_path[64];

void on_fatal(int sig) {
  if (g_input) {
    const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      [[maybe_unused]] ssize_t n = ::write(fd, g_input->data(), g_input->size());
      ::close(fd);
    }
    const char msg[] = "\nfuzz: the input that failed is in ";
    [[maybe_unused]] ssize_t n = ::write(2, msg, sizeof msg - 1);
    n = ::write(2, g_crash_path, std::strlen(g_crash_path));
    n = ::write(2, "\n", 1);
  }
  std::signal(sig == SIGALRM ? SIGABRT : sig, SIG_DFL);
  std::raise(sig == SIGALRM ? SIGABRT : sig);
}

// While an input runs, no single allocation may exceed a bound in its size: a parser must
// not allocate what a header claims before checking it against the bytes there are. The
// bound leaves room for decoding (a 2-bit layer is 16 times its bytes in f32).
size_t g_alloc_limit = 0;  // 0: not checked
double g_alloc_factor = 64;
size_t g_alloc_slack = size_t(16) << 20;

[[noreturn]] void allocation_too_big(size_t n) {
  char msg[160];
  const int len = std::snprintf(msg, sizeof msg,
                                "fuzz: one allocation of %zu bytes for an input of %zu bytes "
                                "(more than %zu)\n",
                                n, g_input ? g_input->size() : size_t(0), g_alloc_limit);
  g_alloc_limit = 0;
  [[maybe_unused]] ssize_t w = ::write(2, msg, size_t(len));
  std::raise(SIGABRT);  // on_fatal keeps the input
  std::abort();
}

void run(const std::string& input, unsigned timeout) {
  g_input = &input;
  alarm(timeout);
  g_alloc_limit = g_alloc_slack + size_t(g_alloc_factor * double(input.size()));
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  g_alloc_limit = 0;
  alarm(0);
  g_input = nullptr;
}

// Values that sit on the edges parsers check: sizes, counts, offsets, lengths.
constexpr uint64_t kInteresting[] = {0,
                                     1,
                                     2,
                                     7,
                                     8,
                                     16,
                                     0x7f,
                                     0x80,
                                     0xff,
                                     0x7fff,
                                     0xffff,
                                     0x7fffffff,
                                     0x80000000,
                                     0xffffffff,
                                     0x100000000ull,
                                     0x7fffffffffffffffull,
                                     0xffffffffffffffffull};
const char* const kTokens[] = {"{",       "}",        "[",      "]",    "\"",
                               ",",       ":",        "null",   "true", "-1",
                               "0",       "1e308",    "-1e308", "NaN",  "9223372036854775807",
                               "\\u0000", "\n",       "- ",     "  ",   "&a",
                               "*a",      "!!binary", "'",      "#"};

std::string mutate(std::string s, std::mt19937_64& rng, size_t max_len) {
  auto pick = [&](size_t n) { return n ? size_t(rng() % n) : size_t(0); };
  const int steps = 1 + int(rng() % 8);
  for (int k = 0; k < steps; ++k) {
    switch (rng() % 9) {
      case 0:  // flip a bit
        if (!s.empty()) s[pick(s.size())] ^= char(1u << (rng() % 8));
        break;
      case 1:  // a random byte
        if (!s.empty()) s[pick(s.size())] = char(rng());
        break;
      case 2: {  // an interesting integer, 1/2/4/8 bytes little-endian
        const uint64_t v = kInteresting[pick(std::size(kInteresting))];
        const size_t w = size_t(1) << (rng() % 4);
        if (s.size() >= w) std::memcpy(s.data() + pick(s.size() - w + 1), &v, w);
        break;
      }
      case 3:  // delete a range
        if (!s.empty()) {
          const size_t at = pick(s.size());
          s.erase(at, 1 + pick(std::min<size_t>(64, s.size() - at)));
        }
        break;
      case 4: {  // insert random bytes
        std::string b(1 + pick(16), '\0');
        for (char& c : b) c = char(rng());
        s.insert(pick(s.size() + 1), b);
        break;
      }
      case 5:  // duplicate a range
        if (!s.empty()) {
          const size_t at = pick(s.size()), n = 1 + pick(std::min<size_t>(128, s.size() - at));
          s.insert(pick(s.size() + 1), s.substr(at, n));
        }
        break;
      case 6:  // truncate
        s.resize(pick(s.size() + 1));
        break;
      case 7:  // a token of the text formats
        s.insert(pick(s.size() + 1), kTokens[pick(std::size(kTokens))]);
        break;
      case 8:  // an ASCII digit run (sizes written as text)
        if (!s.empty()) s[pick(s.size())] = char('0' + rng() % 10);
        break;
    }
  }
  if (s.size() > max_len) s.resize(max_len);
  return s;
}

}  // namespace

// ASan keeps its own operator new (and its checks); the bound then goes unchecked.
#if !defined(__SANITIZE_ADDRESS__)
void* operator new(size_t n) {
  if (g_alloc_limit && n > g_alloc_limit) allocation_too_big(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, std::align_val_t a) {
  if (g_alloc_limit && n > g_alloc_limit) allocation_too_big(n);
  const size_t align = static_cast<size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
#endif

int main(int argc, char** argv) {
  double seconds = 0;
  uint64_t seed = 1;
  size_t max_len = 1 << 20;
  unsigned timeout = 20;
  uint64_t max_memory = uint64_t(4) << 30;
  std::string write_seeds;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "fuzz: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds")
      seconds = std::stod(next());
    else if (a == "--seed")
      seed = std::stoull(next());
    else if (a == "--max-len")
      max_len = std::stoull(next());
    else if (a == "--timeout")
      timeout = unsigned(std::stoul(next()));
    else if (a == "--max-memory")
      max_memory = std::stoull(next()) << 20;
    else if (a == "--alloc-factor")
      g_alloc_factor = std::stod(next());
    else if (a == "--write-seeds")
      write_seeds = next();
    else
      inputs.push_back(a);
  }
  std::snprintf(g_crash_path, sizeof g_crash_path, "fuzz-crash-%d.bin", int(getpid()));
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGALRM}) std::signal(sig, on_fatal);
#if !defined(__SANITIZE_ADDRESS__)
  const rlimit lim{max_memory, max_memory};  // a runaway allocation is a finding
  setrlimit(RLIMIT_AS, &lim);
#endif

  const std::vector<std::string> seeds = fuzz_seeds();
  if (!write_seeds.empty()) {  // a starting corpus for libFuzzer
    std::filesystem::create_directories(write_seeds);
    for (size_t i = 0; i < seeds.size(); ++i)
      mcw::fuzz::write_scratch("seed", seeds[i]),
          std::filesystem::copy_file(mcw::fuzz::scratch_dir() + "/seed",
                                     write_seeds + "/seed-" + std::to_string(i),
                                     std::filesystem::copy_options::overwrite_existing);
    std::printf("%zu seeds written to %s\n", seeds.size(), write_seeds.c_str());
    return 0;
  }
  size_t runs = 0, replayed = 0;
  for (const std::string& s : seeds) run(s, timeout), ++runs;
  for (const std::string& path : inputs) {
    std::vector<std::string> files;
    if (std::filesystem::is_directory(path)) {
      for (const auto& e : std::filesystem::directory_iterator(path))
        if (e.is_regular_file()) files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(path);
    }
    for (const std::string& f : files) run(mcw::fuzz::read_bytes(f), timeout), ++runs, ++replayed;
  }
  std::mt19937_64 rng(seed);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  size_t mutated = 0;
  while (!seeds.empty() && std::chrono::steady_clock::now() < end) {
    std::string input = seeds[size_t(rng() % seeds.size())];
    // Stack mutations now and then, so that inputs wander further from the seeds.
    for (int depth = 1 + int(rng() % 3); depth > 0; --depth)
      input = mutate(std::move(input), rng, max_len);
    run(input, timeout);
    ++runs, ++mutated;
  }
  std::printf("fuzz: %zu inputs (%zu seeds, %zu replayed, %zu mutated), %zu accepted, no failure\n",
              runs, seeds.size(), replayed, mutated, mcw::fuzz::accepted);
  std::filesystem::remove_all(mcw::fuzz::scratch_dir());
  return 0;
}
