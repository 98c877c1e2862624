// `mcw activations`: one profile per linear group, the norms of every channel, and a clear
// error without calibration text.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_test_util.h"

using namespace mcw::test;

TEST(CliActivations, ProfilesEveryLinearGroup) {
  const auto dir = fresh_dir("profile");
  write_tiny_model_and_text(dir);
  const std::string model = (dir / "model").string(), text = (dir / "eval.txt").string();
  const Result r = run_mcw("activations " + model + " --calib " + text + " --windows 2 --window 16 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 8u);  // 2 layers x (q/k/v, o, gate/up, down)
  EXPECT_EQ(j[0]["linears"].size(), 3u);
  EXPECT_EQ(j[3]["channels"], 40);  // down_proj reads the hidden width
  for (const auto& p : j) {
    EXPECT_EQ(p["tokens"], 32);
    EXPECT_EQ(p["norm"].size(), p["channels"].get<size_t>());
    double mx = 0;
    for (double v : p["norm"]) mx = std::max(mx, v);
    EXPECT_GT(mx, 0.0);
    EXPECT_GE(p["max_over_median"].get<double>(), 1.0);
  }
  const Result text_out = run_mcw("activations " + model + " --calib " + text + " --windows 2 --window 16");
  ASSERT_EQ(text_out.code, 0) << text_out.err;
  EXPECT_NE(text_out.out.find("model.layers.1.mlp.down_proj.weight"), std::string::npos);

  const Result missing = run_mcw("activations " + model + " --calib " + (dir / "nope.txt").string());
  expect_one_line_error(missing, "nope.txt", "");
}
