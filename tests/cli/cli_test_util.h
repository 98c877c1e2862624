// Running the `mcw` binary as a user does, for the end-to-end CLI tests: exit code and
// captured output, one-line error checks, and scratch directories that parallel ctest
// processes do not share.
#pragma once
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/model/llama_save.h"
#include "engine/project/project.h"
#include "tests/engine/llama_test_util.h"

namespace mcw::test {

struct Result {
  int code;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// TempDir()/mcw_cli_<suite>_<name>_<pid>, emptied.
inline std::filesystem::path fresh_dir(const std::string& name) {
  const std::string suite =
      testing::UnitTest::GetInstance()->current_test_info()->test_suite_name();
  const std::filesystem::path d =
      std::filesystem::path(testing::TempDir()) /
      ("mcw_cli_" + suite + "_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// Runs mcw with arguments (shell-quoted by the caller), capturing stdout and stderr into
// files of the current test's own. With `file_limit`, no file may grow past that many
// bytes (RLIMIT_FSIZE: writes fail with EFBIG as on a full disk, even as root; mcw ignores
// SIGXFSZ).
inline Result run_mcw(const std::string& args, uint64_t file_limit = 0) {
  const testing::TestInfo* t = testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir =
      std::filesystem::path(testing::TempDir()) / "mcw_cli_capture" /
      (std::string(t->test_suite_name()) + "." + t->name() + "." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string out = (dir / "out.txt").string(), err = (dir / "err.txt").string();
  const std::string cmd =
      std::string(MCW_BINARY_DIR) + "/app/mcw " + args + " >" + out + " 2>" + err;
  const pid_t pid = fork();
  if (pid == 0) {
    if (file_limit) {
      const rlimit r{file_limit, file_limit};
      setrlimit(RLIMIT_FSIZE, &r);
    }
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

// Exit status 1 and exactly one line on stderr naming `file` and saying `phrase`.
inline void expect_one_line_error(const Result& r, const std::string& file,
                                  const std::string& phrase) {
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(phrase), std::string::npos) << r.err;
}

// A tiny random byte-level llama in dir/model and a short dir/eval.txt: what the
// project-level commands run on.
inline void write_tiny_model_and_text(const std::filesystem::path& dir) {
  LlamaConfig c = tiny_config(4, 2);
  c.vocab_size = 258;
  c.max_seq_len = 64;
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(random_llama(c, 5), (dir / "model").string(), tok);
  std::ofstream(dir / "eval.txt") << "The quick brown fox jumps over the lazy dog. Pack my box.";
}

// A project over write_tiny_model_and_text's files (written here) with a short evaluation
// window; the caller adds recipes or calibration text and saves it.
inline Project tiny_project(const std::filesystem::path& dir, const std::string& name) {
  write_tiny_model_and_text(dir);
  Project p;
  p.name = name;
  p.model_path = (dir / "model").string();
  p.evaluation_path = (dir / "eval.txt").string();
  p.eval.window = p.eval.stride = 32;
  return p;
}

}  // namespace mcw::test
