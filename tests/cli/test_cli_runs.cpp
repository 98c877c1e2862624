// `mcw run` and `mcw runs` end to end on a tiny byte-level model and project.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../engine/llama_test_util.h"
#include "tests/cli/cli_test_util.h"
#include "engine/model/llama_save.h"
#include "engine/project/project.h"

using namespace mcw;
namespace fs = std::filesystem;
using namespace mcw::test;

namespace {

std::string make_project(const fs::path& dir) {
  Project p = tiny_project(dir, "clitest");
  p.recipes = {{"w8", "", "stages:\n  - algorithm: rtn\n    bits: 8\n    group_size: 0\n"},
               {"w2", "", "stages:\n  - algorithm: rtn\n    bits: 2\n    group_size: 0\n"}};
  const std::string file = (dir / "clitest.mcwproj").string();
  save_project(p, file);
  return file;
}

}  // namespace

TEST(CliRuns, RunListShowCompare) {
  const fs::path dir = fresh_dir("all");
  const std::string proj = make_project(dir);
  const Result r = run_mcw("run " + proj + " --recipe w8 --recipe w2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("baseline"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("w2"), std::string::npos) << r.out;

  const Result l = run_mcw("runs list " + proj + " --json");
  ASSERT_EQ(l.code, 0) << l.err;
  const auto runs = nlohmann::json::parse(l.out);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0]["recipe"], "w2");  // newest first
  EXPECT_EQ(runs[2]["recipe"], "baseline");
  for (const auto& run : runs) EXPECT_EQ(run["status"], "done");
  EXPECT_EQ(runs[2]["metrics"]["kl"], 0.0);
  EXPECT_LT(runs[0]["metrics"]["size_bytes"].get<double>(),
            runs[1]["metrics"]["size_bytes"].get<double>());
  const Result table = run_mcw("runs list " + (dir / "clitest.mcwdb").string());
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("perplexity"), std::string::npos);

  // Running again adds the recipe's run, not another baseline.
  ASSERT_EQ(run_mcw("run " + proj + " --recipe w8").code, 0);
  EXPECT_EQ(nlohmann::json::parse(run_mcw("runs list " + proj + " --json").out).size(), 4u);

  const Result s = run_mcw("runs show " + proj + " 2");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.out.find("relative_error"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("algorithm: rtn"), std::string::npos);

  const Result cmp = run_mcw("runs compare " + proj + " 2 3 --json");
  ASSERT_EQ(cmp.code, 0) << cmp.err;
  const auto j = nlohmann::json::parse(cmp.out);
  EXPECT_NEAR(j["delta"]["bits_per_weight"].get<double>(),
              j["b"]["metrics"]["bits_per_weight"].get<double>() -
                  j["a"]["metrics"]["bits_per_weight"].get<double>(),
              1e-12);
  EXPECT_NE(run_mcw("runs compare " + proj + " 2 3").out.find("B - A"), std::string::npos);
}

TEST(CliRuns, ErrorsAreOneLine) {
  const fs::path dir = fresh_dir("errors");
  const std::string proj = make_project(dir);
  const Result r = run_mcw("run " + proj + " --recipe nope --no-baseline");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("clitest.mcwproj"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no recipe named 'nope'"), std::string::npos) << r.err;
  const Result missing = run_mcw("runs list " + (dir / "none.mcwdb").string());
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("no such run database"), std::string::npos) << missing.err;
  EXPECT_EQ(run_mcw("runs frob " + proj).code, 1);
  EXPECT_EQ(run_mcw("runs show " + proj + " x").code, 1);
}
