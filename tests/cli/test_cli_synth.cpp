// `mcw synth`: a tiny model whose planted outlier features `mcw activations` finds (and an
// --outliers 0 one where it finds none), the one-line errors, and the peak-memory line
// long commands end with.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_test_util.h"

using namespace mcw::test;
namespace fs = std::filesystem;

namespace {

// Channels reaching |x| >= 6 at the inputs of q/k/v and of gate/up (the RMSNorm outputs the
// outliers are planted in), one entry per such group.
std::vector<int> outlier_counts(const std::string& activations_json) {
  std::vector<int> counts;
  for (const auto& p : nlohmann::json::parse(activations_json)) {
    const std::string first = p["linears"][0];
    if (first.find("q_proj") != std::string::npos || first.find("gate_proj") != std::string::npos)
      counts.push_back(p["channels_abs_ge_6"].get<int>());
  }
  return counts;
}

}  // namespace

TEST(CliSynth, PlantedOutliersShowInActivations) {
  const fs::path dir = fresh_dir("outliers");
  std::string text;
  for (int i = 0; i < 40; ++i) text += "Outlier features appear in every layer of a large model. ";
  write_bytes((dir / "calib.txt").string(), text);
  const std::string calib =
      " --calib " + (dir / "calib.txt").string() + " --windows 8 --window 64 --json";

  const Result planted =
      run_mcw("synth --shape tiny --seed 3 --outliers 5 --out " + (dir / "planted").string());
  ASSERT_EQ(planted.code, 0) << planted.err;
  EXPECT_NE(planted.out.find("tiny"), std::string::npos) << planted.out;
  EXPECT_NE(planted.err.find("peak memory: "), std::string::npos) << planted.err;
  EXPECT_TRUE(fs::exists(dir / "planted" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "planted" / "mcw_tokenizer.json"));
  const auto config = nlohmann::json::parse(slurp(dir / "planted" / "config.json"));
  EXPECT_EQ(config["mcw_synth"]["outlier_channels"].size(), 5u);

  const Result a = run_mcw("activations " + (dir / "planted").string() + calib);
  ASSERT_EQ(a.code, 0) << a.err;  // stdout is the JSON alone: the memory line went to stderr
  EXPECT_NE(a.err.find("peak memory: "), std::string::npos) << a.err;
  EXPECT_EQ(outlier_counts(a.out), (std::vector<int>{5, 5, 5, 5}));

  const Result plain =
      run_mcw("synth --shape tiny --seed 3 --outliers 0 --out " + (dir / "plain").string());
  ASSERT_EQ(plain.code, 0) << plain.err;
  const Result b = run_mcw("activations " + (dir / "plain").string() + calib);
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(outlier_counts(b.out), (std::vector<int>{0, 0, 0, 0}));
}

TEST(CliSynth, ErrorsAreOneLineAndShortCommandsReportNoMemory) {
  const fs::path dir = fresh_dir("errors");
  expect_one_line_error(run_mcw("synth --shape llama-9 --out " + (dir / "m").string()), "",
                        "unknown shape 'llama-9'");
  expect_one_line_error(run_mcw("synth --shape tiny"), "", "--out");
  expect_one_line_error(
      run_mcw("synth --shape tiny --outlier-scale big --out " + (dir / "m").string()), "",
      "--outlier-scale");
  write_bytes((dir / "taken").string(), "x");
  expect_one_line_error(run_mcw("synth --shape tiny --out " + (dir / "taken").string()), "taken",
                        "not a directory");
  EXPECT_FALSE(fs::exists(dir / "m"));

  const Result ok = run_mcw("synth --shape tiny --layers 1 --out " + (dir / "one").string());
  ASSERT_EQ(ok.code, 0) << ok.err;
  const Result inspect = run_mcw("inspect " + (dir / "one").string() + " --json --no-stats");
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  EXPECT_EQ(inspect.err.find("peak memory"), std::string::npos) << inspect.err;
  EXPECT_EQ(nlohmann::json::parse(inspect.out)["hparams"]["num_hidden_layers"], 1) << inspect.out;
}

// A bf16 model evaluated with --bf16-activations (inputs rounded to bf16 on AVX-512 BF16
// machines, f32 elsewhere) scores within bf16 rounding of the f32-input evaluation.
TEST(CliSynth, Bf16ActivationsEvaluateWithinRounding) {
  const fs::path dir = fresh_dir("bf16act");
  ASSERT_EQ(run_mcw("synth --shape tiny --seed 5 --out " + (dir / "m").string()).code, 0);
  std::string text;
  for (int i = 0; i < 30; ++i) text += "A sentence to score, with some words in it. ";
  write_bytes((dir / "eval.txt").string(), text);
  const std::string eval = "eval " + (dir / "m").string() + " --text " + (dir / "eval.txt").string() +
                           " --window 64 --max-tokens 256 --json";
  const Result f32 = run_mcw(eval), bf16 = run_mcw(eval + " --bf16-activations");
  ASSERT_EQ(f32.code, 0) << f32.err;
  ASSERT_EQ(bf16.code, 0) << bf16.err;
  const double a = nlohmann::json::parse(f32.out)["perplexity"].get<double>();
  const double b = nlohmann::json::parse(bf16.out)["perplexity"].get<double>();
  EXPECT_GT(a, 1.0);
  EXPECT_NEAR(b / a, 1.0, 0.02) << a << " vs " << b;
}
