// `mcw compress` with a structured stage and SmoothQuant W8A8, then `mcw eval` of what it
// saved: the saved model (smaller shapes, output biases, the int8-activation flag) must
// reproduce the numbers compress measured on the model in memory.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../engine/llama_test_util.h"
#include "engine/model/llama_save.h"
#include "tests/cli/cli_test_util.h"

using namespace mcw;
namespace fs = std::filesystem;
using namespace mcw::test;

TEST(CliStructured, CompressedModelEvaluatesAsCompressMeasured) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.vocab_size = 258, c.max_seq_len = 256, c.hidden_dim = 64;
  const std::string base = (fs::path(testing::TempDir()) / "cli_structured_base").string();
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(test::random_llama(c, 5), base, tok);
  const std::string text = (fs::path(testing::TempDir()) / "cli_structured.txt").string();
  std::ofstream(text)
      << "The quick brown fox jumps over the lazy dog. Pack my box with five dozen "
         "liquor jugs. How vexingly quick daft zebras jump! Sphinx of black quartz, "
         "judge my vow. The five boxing wizards jump quickly.";
  const std::string recipe = (fs::path(testing::TempDir()) / "cli_structured.yaml").string();
  std::ofstream(recipe) << "stages:\n  - algorithm: heads\n    fraction: 0.5\n"
                           "  - algorithm: channels\n    fraction: 0.25\n"
                           "  - algorithm: smoothquant\n    alpha: 0.5\n";
  const std::string out_dir = (fs::path(testing::TempDir()) / "cli_structured_out").string();
  fs::remove_all(out_dir);
  const Result comp = run_mcw("compress " + base + " --recipe " + recipe + " --calib " + text +
                           " --windows 4 --window 32 --out " + out_dir + " --eval " + text + " --json");
  ASSERT_EQ(comp.code, 0) << comp.err;
  const auto report = nlohmann::json::parse(comp.out);
  std::ifstream cfg_in(out_dir + "/config.json");
  const auto cfg = nlohmann::json::parse(cfg_in);
  EXPECT_EQ(cfg["num_attention_heads"], 2);
  EXPECT_EQ(cfg["intermediate_size"], 48);
  EXPECT_EQ(cfg["mcw_activation_int8"], nlohmann::json({15, 15}));
  const Result ev = run_mcw("eval " + out_dir + " --text " + text + " --window 256 --baseline " +
                           base + " --json");
  ASSERT_EQ(ev.code, 0) << ev.err;
  const auto eval = nlohmann::json::parse(ev.out);
  EXPECT_NEAR(eval["perplexity"].get<double>(), report["eval"]["perplexity"].get<double>(), 1e-9);
  EXPECT_NEAR(eval["kl"].get<double>(), report["eval"]["kl"].get<double>(), 1e-12);
  EXPECT_GT(eval["kl"].get<double>(), 0.0);
  fs::remove_all(out_dir);
  fs::remove_all(base);
}
