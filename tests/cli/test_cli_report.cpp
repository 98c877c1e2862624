// `mcw project new|show` and `mcw report` end to end on a tiny byte-level model.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "../engine/llama_test_util.h"
#include "../engine/xml_check.h"
#include "engine/model/llama_save.h"
#include "engine/project/project.h"
#include "tests/cli/cli_test_util.h"

using namespace mcw;
namespace fs = std::filesystem;
using namespace mcw::test;

namespace {

// A tiny model, an evaluation text and a recipe file in `dir`.
void make_files(const fs::path& dir) {
  write_tiny_model_and_text(dir);
  std::ofstream(dir / "w8.yaml") << "stages:\n  - algorithm: rtn\n    bits: 8\n    group_size: 0\n";
  std::ofstream(dir / "broken.yaml") << "stages:\n  - algorithm: no-such-thing\n";
}

}  // namespace

TEST(CliProject, NewThenShowRoundTrip) {
  const fs::path dir = fresh_dir("new");
  make_files(dir);
  const std::string proj = (dir / "sub" / "p.mcwproj").string();
  fs::create_directories(dir / "sub");
  const std::string args = "project new " + proj + " --model " + (dir / "model").string() +
                           " --evaluation " + (dir / "eval.txt").string() + " --recipe " +
                           (dir / "w8.yaml").string() + " --name tiny";
  const Result r = run_mcw(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const Project p = load_project(proj);
  EXPECT_EQ(p.name, "tiny");
  EXPECT_EQ(fs::path(p.model_path), (dir / "model").lexically_normal());
  EXPECT_EQ(fs::path(p.evaluation_path), (dir / "eval.txt").lexically_normal());
  EXPECT_TRUE(p.calibration_path.empty());
  ASSERT_EQ(p.recipes.size(), 1u);
  EXPECT_EQ(p.recipes[0].name, "w8");
  EXPECT_EQ(p.database_path, (dir / "sub" / "tiny.mcwdb").string());
  EXPECT_NE(slurp(proj).find("\"../model\""), std::string::npos);  // stored relative

  const Result s = run_mcw("project show " + proj);
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.out.find("project       tiny"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find((dir / "model").string()), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("w8"), std::string::npos);
  EXPECT_NE(s.out.find("problems      none"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("(not created yet)"), std::string::npos) << s.out;

  // An existing file is kept unless --force.
  const Result again = run_mcw(args);
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_EQ(run_mcw(args + " --force").code, 0);
}

TEST(CliProject, ProblemsStopNewUnlessForced) {
  const fs::path dir = fresh_dir("problems");
  make_files(dir);
  const std::string proj = (dir / "p.mcwproj").string();
  const std::string args = "project new " + proj + " --model " + (dir / "nope").string() +
                           " --recipe " + (dir / "broken.yaml").string();
  const Result r = run_mcw(args);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nope: no such file or directory"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no-such-thing"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(proj));
  ASSERT_EQ(run_mcw(args + " --force").code, 0);
  const Result s = run_mcw("project show " + proj);
  EXPECT_EQ(s.code, 0);
  EXPECT_NE(s.out.find("problems      2"), std::string::npos) << s.out;
  EXPECT_EQ(run_mcw("project new " + proj).code, 1);  // no --model
  EXPECT_EQ(run_mcw("project frob " + proj).code, 1);
  EXPECT_EQ(run_mcw("project show " + (dir / "none.mcwproj").string()).code, 1);
}

TEST(CliReport, EveryFormatBeforeAndAfterRuns) {
  const fs::path dir = fresh_dir("report");
  make_files(dir);
  const std::string proj = (dir / "p.mcwproj").string();
  ASSERT_EQ(
      run_mcw("project new " + proj + " --model " + (dir / "model").string() + " --evaluation " +
              (dir / "eval.txt").string() + " --recipe " + (dir / "w8.yaml").string())
          .code,
      0);
  // Before any run: a report that says so, and no database created.
  const std::string early = (dir / "early.html").string();
  const Result e = run_mcw("report " + proj + " --out " + early);
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(slurp(early).find("No runs recorded yet"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "p.mcwdb"));

  // A short evaluation window keeps the run quick.
  Project p = load_project(proj);
  p.eval.window = p.eval.stride = 32;
  save_project(p, proj);
  const Result run = run_mcw("run " + proj);
  ASSERT_EQ(run.code, 0) << run.err;

  const std::string html = (dir / "r.html").string();
  const Result h = run_mcw("report " + proj + " --out " + html);
  ASSERT_EQ(h.code, 0) << h.err;
  EXPECT_NE(h.out.find("wrote " + html), std::string::npos);
  const std::string page = slurp(html);
  EXPECT_EQ(test::check_xml(page).problem, "");
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_NE(page.find("model.layers.1.mlp.down_proj.weight"), std::string::npos);  // layer bars
  EXPECT_NE(page.find("algorithm: rtn"), std::string::npos);                       // recipe

  const Result m = run_mcw("report " + proj + " --out " + (dir / "r.md").string());
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_NE(slurp(dir / "r.md").find("| Run | Recipe | Status |"), std::string::npos);

  const Result c = run_mcw("report " + proj + " --out " + (dir / "r.csv").string());
  ASSERT_EQ(c.code, 0) << c.err;
  const std::string csv = slurp(dir / "r.csv");
  size_t lines = 0;
  for (char ch : csv) lines += ch == '\n';
  EXPECT_EQ(lines, 3u);  // header, baseline, w8
  EXPECT_NE(csv.find(",perplexity,"), std::string::npos);
  EXPECT_NE(slurp(dir / "r-layers.csv").find("relative_error"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir / "r-sensitivity.csv"));

  const Result show = run_mcw("project show " + proj);
  EXPECT_NE(show.out.find("runs          2 (2 done)"), std::string::npos) << show.out;

  const Result bad = run_mcw("report " + proj + " --out " + (dir / "r.pdf").string());
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("unknown report format '.pdf'"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1);
  EXPECT_EQ(run_mcw("report " + proj).code, 1);  // no --out
}

// A disk that fills up while a report is written: one error line naming the report and the
// system's reason, the earlier report under that name as it was.
TEST(CliReport, AFullDiskKeepsThePreviousReport) {
  const fs::path dir = fresh_dir("report-full");
  make_files(dir);
  const std::string proj = (dir / "p.mcwproj").string(), html = (dir / "r.html").string();
  ASSERT_EQ(run_mcw("project new " + proj + " --model " + (dir / "model").string() +
                    " --evaluation " + (dir / "eval.txt").string())
                .code,
            0);
  ASSERT_EQ(run_mcw("report " + proj + " --out " + html).code, 0);
  const std::string before = slurp(html);
  ASSERT_GT(before.size(), 1000u);
  expect_one_line_error(run_mcw("report " + proj + " --out " + html, 512), "r.html",
                        "File too large");
  EXPECT_TRUE(slurp(html) == before);
}
