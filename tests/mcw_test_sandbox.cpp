// mcw_test_sandbox COMMAND [ARGS...]: runs one test process in a home of its own. Every
// CTest entry goes through it (tests/CMakeLists.txt, mcw_add_test and mcw_sandbox_gtests),
// so no two tests, nor a test and the user, share QSettings (recent projects, dock layout,
// theme), XDG config/data/cache/state/runtime directories or scratch files with fixed names.
//
// It makes a fresh directory under MCW_TEST_SANDBOX_ROOT (<build>/test-sandbox), points
// HOME, XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_CACHE_HOME, XDG_STATE_HOME, XDG_RUNTIME_DIR,
// TMPDIR and TEST_TMPDIR (GoogleTest's TempDir()) into it, sets MCW_TEST_SANDBOX to it, and
// runs the command. The directory is removed when the command passes and kept (its path
// on stderr) when it fails, or always with MCW_KEEP_TEST_SANDBOX=1. The command dies with
// the sandbox (PR_SET_PDEATHSIG), so a test CTest kills on timeout leaves nothing behind;
// SIGINT, SIGTERM and SIGHUP are passed on to it.
//
// A test still running after MCW_TEST_STACKS_AFTER seconds (120 unless set; 0: never) gets
// every thread's stack printed to stderr by gdb, once, and goes on: a test that hangs then
// leaves, in CTest's output, where it hung, which a hang seen once in CI needs.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

namespace fs = std::filesystem;

static volatile sig_atomic_t g_child = 0;
static volatile sig_atomic_t g_alarm = 0;

static void forward(int sig) {
  if (g_child > 0) ::kill(pid_t(g_child), sig);
}

static void on_alarm(int) { g_alarm = 1; }

// gdb's stacks of every thread of `pid` on stderr (the process goes on after).
static void print_stacks(pid_t pid, const char* command, unsigned seconds) {
  std::fprintf(stderr, "mcw_test_sandbox: %s still running after %u s; its threads' stacks:\n",
               command, seconds);
  std::fflush(nullptr);
  const std::string target = std::to_string(pid);
  const pid_t gdb = ::fork();
  if (gdb == 0) {
    ::dup2(2, 1);
    ::execlp("gdb", "gdb", "-p", target.c_str(), "-batch", "-nx", "-iex", "set auto-load off",
             "-ex", "thread apply all bt", static_cast<char*>(nullptr));
    std::fprintf(stderr, "mcw_test_sandbox: cannot run gdb: %s\n", std::strerror(errno));
    _exit(127);
  }
  if (gdb > 0)
    while (::waitpid(gdb, nullptr, 0) < 0 && errno == EINTR) {
    }
}

static bool make_dir(const fs::path& p, mode_t mode) {
  if (::mkdir(p.c_str(), mode) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "mcw_test_sandbox: cannot create %s: %s\n", p.c_str(), std::strerror(errno));
    return false;
  }
  return true;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s COMMAND [ARGS...]\n", argv[0]);
    return 2;
  }
  const char* root_env = std::getenv("MCW_TEST_SANDBOX_ROOT");
  const fs::path root = root_env && *root_env ? fs::path(root_env) : fs::path(MCW_TEST_SANDBOX_ROOT);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) {
    std::fprintf(stderr, "mcw_test_sandbox: cannot create %s: %s\n", root.c_str(),
                 ec.message().c_str());
    return 2;
  }
  // Named after the test (MCW_TEST_NAME, set by mcw_add_test) or the program and its
  // --gtest_filter, so a kept directory says whose it is.
  std::string name;
  if (const char* t = std::getenv("MCW_TEST_NAME"); t && *t) {
    name = t;
  } else {
    name = fs::path(argv[1]).filename().string();
    for (int i = 2; i < argc; ++i)
      if (std::strncmp(argv[i], "--gtest_filter=", 15) == 0) name += std::string("_") + (argv[i] + 15);
  }
  for (char& c : name)
    if (c == '/' || c == '*' || c == ':') c = '_';
  std::string tmpl = (root / (name.substr(0, 120) + ".XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) {
    std::fprintf(stderr, "mcw_test_sandbox: cannot create a directory in %s: %s\n", root.c_str(),
                 std::strerror(errno));
    return 2;
  }
  const fs::path box = tmpl;
  const struct {
    const char* var;
    const char* sub;
    mode_t mode;
  } dirs[] = {{"XDG_CONFIG_HOME", "config", 0755}, {"XDG_DATA_HOME", "data", 0755},
              {"XDG_CACHE_HOME", "cache", 0755},   {"XDG_STATE_HOME", "state", 0755},
              {"XDG_RUNTIME_DIR", "runtime", 0700}, {"TMPDIR", "tmp", 0755}};
  for (const auto& d : dirs) {
    if (!make_dir(box / d.sub, d.mode)) return 2;
    ::setenv(d.var, (box / d.sub).c_str(), 1);
  }
  ::setenv("TEST_TMPDIR", (box / "tmp").c_str(), 1);
  ::setenv("HOME", box.c_str(), 1);
  ::setenv("MCW_TEST_SANDBOX", box.c_str(), 1);

  struct sigaction sa {};
  sa.sa_handler = forward;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);

  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) {
    std::perror("mcw_test_sandbox: fork");
    return 2;
  }
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(2);  // the sandbox died before prctl
    // Where Yama allows tracing only by ancestors, let the stack printer's gdb attach.
    ::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &dfl, nullptr);
    ::execvp(argv[1], argv + 1);
    std::fprintf(stderr, "mcw_test_sandbox: cannot run %s: %s\n", argv[1], std::strerror(errno));
    _exit(127);
  }
  g_child = child;
  unsigned stacks_after = 120;
  if (const char* s = std::getenv("MCW_TEST_STACKS_AFTER"); s && *s)
    stacks_after = unsigned(std::strtoul(s, nullptr, 10));
  if (stacks_after > 0) {
    struct sigaction alarm_action {};
    alarm_action.sa_handler = on_alarm;  // no SA_RESTART: waitpid below returns EINTR
    sigemptyset(&alarm_action.sa_mask);
    ::sigaction(SIGALRM, &alarm_action, nullptr);
    ::alarm(stacks_after);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      std::perror("mcw_test_sandbox: waitpid");
      return 2;
    }
    if (g_alarm) {
      g_alarm = 0;
      print_stacks(child, argv[1], stacks_after);
    }
  }

  const bool passed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  const char* keep = std::getenv("MCW_KEEP_TEST_SANDBOX");
  if (passed && !(keep && std::strcmp(keep, "1") == 0))
    fs::remove_all(box, ec);  // a failed removal only leaves a directory behind
  else
    std::fprintf(stderr, "mcw_test_sandbox: kept %s\n", box.c_str());
  if (WIFSIGNALED(status)) {  // die the same way, so CTest reports the signal
    std::fflush(nullptr);
    ::signal(WTERMSIG(status), SIG_DFL);
    ::raise(WTERMSIG(status));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}
