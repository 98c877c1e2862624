// mcw compress killed after a checkpoint leaves <out>.partial; a plain rerun refuses to
// overwrite it, --resume goes on and writes what an uninterrupted run writes, and a
// checkpoint of another recipe is refused by name.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>

#include "../engine/llama_test_util.h"
#include "engine/model/llama_save.h"
#include "tests/cli/cli_test_util.h"

using namespace mcw;
namespace fs = std::filesystem;
using namespace mcw::test;

namespace {

std::string temp(const std::string& name) { return (fs::path(testing::TempDir()) / name).string(); }

struct Inputs {
  std::string model, text, recipe;
  std::string args(const std::string& out) const {
    return "compress " + model + " --recipe " + recipe + " --calib " + text +
           " --windows 3 --window 48 --out " + out;
  }
};

Inputs setup() {
  LlamaConfig c = tiny_config(4, 2);
  c.vocab_size = 258;
  c.hidden_dim = 64;
  c.n_layers = 4;
  c.max_seq_len = 128;
  Inputs s{temp("resume_src"), temp("resume_calib.txt"), temp("resume_gptq.yaml")};
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(random_llama(c, 11), s.model, tok);
  std::string t;
  for (int i = 0; i < 30; ++i)
    t += "Calibration line " + std::to_string(i) + " with a few words.\n";
  write_bytes(s.text, t);
  write_bytes(s.recipe, "stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n");
  return s;
}

// Runs mcw with a kill (SIGKILL, as the OOM killer or a power cut would) after `n` checkpoints.
bool killed_after(int n, const std::string& args) {
  const int status =
      std::system(("MCW_FAULT_KILL_AFTER_CHECKPOINT=" + std::to_string(n) + " " +
                   std::string(MCW_BINARY_DIR) + "/app/mcw " + args + " >/dev/null 2>&1")
                      .c_str());
  // The shell may run mcw as its child (and exit 128 + 9) or exec it.
  return (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
         (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL);
}

}  // namespace

TEST(CliResume, AKilledCompressGoesOnWithResume) {
  const Inputs s = setup();
  const std::string whole = temp("resume_whole"), out = temp("resume_out");
  ASSERT_EQ(run_mcw(s.args(whole)).code, 0);

  ASSERT_TRUE(killed_after(2, s.args(out)));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fs::exists(out + ".partial/.checkpoint.json"));
  // Without --resume the stopped run is not thrown away.
  expect_one_line_error(run_mcw(s.args(out)), "resume_out.partial", "2 of 4 blocks done");
  EXPECT_TRUE(fs::exists(out + ".partial/.checkpoint.json"));

  const Result r = run_mcw(s.args(out) + " --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out + ".partial"));
  for (const auto& e : fs::directory_iterator(whole)) {
    const std::string n = e.path().filename().string();
    if (n == "compression.json") continue;  // holds the run's seconds
    EXPECT_TRUE(slurp(e.path()) == slurp(fs::path(out) / n)) << n;
  }
  const auto a = nlohmann::json::parse(slurp(fs::path(whole) / "compression.json"));
  const auto b = nlohmann::json::parse(slurp(fs::path(out) / "compression.json"));
  EXPECT_EQ(a["layers"], b["layers"]);
  EXPECT_EQ(a["storage_bytes"], b["storage_bytes"]);
  EXPECT_EQ(run_mcw("eval " + out + " --text " + s.text + " --window 48").code, 0);
}

TEST(CliResume, ResumeRefusesAnotherRunAndNothing) {
  const Inputs s = setup();
  const std::string out = temp("resume_other");
  expect_one_line_error(run_mcw(s.args(out) + " --resume"), "resume_other.partial",
                        "no checkpoint");
  ASSERT_TRUE(killed_after(1, s.args(out)));
  write_bytes(s.recipe, "stages:\n  - algorithm: gptq\n    bits: 3\n    group_size: 32\n");
  expect_one_line_error(run_mcw(s.args(out) + " --resume"), "resume_other.partial",
                        "different recipe");
  EXPECT_TRUE(fs::exists(out + ".partial/.checkpoint.json"));
}

// A write that fails at the very end (the last shard, embeddings and head, is the largest
// file: as a disk filling up would) is one error line saying where the work is kept, and
// --resume then writes the same output as an uninterrupted run.
TEST(CliResume, AFailedWriteKeepsTheWorkForResume) {
  const Inputs s = setup();
  const std::string whole = temp("resume_full_whole"), out = temp("resume_full");
  ASSERT_EQ(run_mcw(s.args(whole)).code, 0);
  const uint64_t last = fs::file_size(fs::path(whole) / "model-00005-of-00005.safetensors");
  for (int b = 1; b <= 4; ++b)  // every block's shard fits under the limit
    ASSERT_LT(fs::file_size(fs::path(whole) /
                            ("model-0000" + std::to_string(b) + "-of-00005.safetensors")),
              last - 1);
  const Result r = run_mcw(s.args(out), last - 1);
  EXPECT_EQ(r.code, 1) << r.err;  // stderr: the progress bar's line, then the error's
  EXPECT_NE(r.err.find("model-00005-of-00005.safetensors: write failed"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("all blocks done kept in"), std::string::npos) << r.err;
  ASSERT_TRUE(fs::exists(out + ".partial/.checkpoint.json"));
  ASSERT_EQ(run_mcw(s.args(out) + " --resume").code, 0);
  for (const auto& e : fs::directory_iterator(whole)) {
    const std::string n = e.path().filename().string();
    if (n != "compression.json") {
      EXPECT_TRUE(slurp(e.path()) == slurp(fs::path(out) / n)) << n;
    }
  }
}

// A compression that would not fit is refused before anything is written, naming its need.
TEST(CliResume, TooLittleMemoryIsRefusedUpFront) {
  const Inputs s = setup();
  const std::string out = temp("resume_small");
  const Result r = run_mcw(s.args(out) + " --max-memory 64K");
  expect_one_line_error(r, "resume_src", "needs about");
  EXPECT_NE(r.err.find("--max-memory allows 64.00 KiB"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out + ".partial"));
  EXPECT_FALSE(fs::exists(out));
  expect_one_line_error(run_mcw(s.args(out) + " --max-memory lots"), "--max-memory",
                        "takes a size");
  EXPECT_EQ(run_mcw(s.args(out) + " --max-memory 4G").code, 0);
}
