// `mcw sensitivity` and `mcw search` end to end on a tiny byte-level model and project.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../engine/llama_test_util.h"
#include "tests/cli/cli_test_util.h"
#include "engine/compress/compress_llama.h"
#include "engine/model/llama_save.h"
#include "engine/project/project.h"

using namespace mcw;
namespace fs = std::filesystem;
using namespace mcw::test;

namespace {

std::string make_project(const fs::path& dir) {
  Project p = tiny_project(dir, "searchtest");
  std::ofstream(dir / "calib.txt")
      << "A stitch in time saves nine. Look before you leap. Fortune favours the bold; the early "
         "bird gets the worm. Many hands make light work.";
  p.calibration_path = (dir / "calib.txt").string();
  const std::string file = (dir / "searchtest.mcwproj").string();
  save_project(p, file);
  return file;
}

}  // namespace

TEST(CliSearch, SensitivityTableIsStoredAndReadBack) {
  const fs::path dir = fresh_dir("sens");
  const std::string proj = make_project(dir);
  const Result a = run_mcw("sensitivity " + proj + " --settings w8,w2,s50 --windows 2 --json");
  ASSERT_EQ(a.code, 0) << a.err;
  const auto ja = nlohmann::json::parse(a.out);
  EXPECT_EQ(ja["layers"].size(), 14u);
  EXPECT_EQ(ja["settings"], (nlohmann::json{"w8", "w2", "s50"}));
  EXPECT_EQ(ja["computed"], 42);
  EXPECT_EQ(ja["windows"], 2);
  for (const auto& row : ja["kl"]) EXPECT_LT(row[0].get<double>(), row[1].get<double>());
  const auto jb = nlohmann::json::parse(
      run_mcw("sensitivity " + proj + " --settings w8,w2,s50 --windows 2 --json").out);
  EXPECT_EQ(jb["computed"], 0);
  EXPECT_EQ(jb["cached"], 42);
  EXPECT_EQ(jb["kl"], ja["kl"]);
  const Result text = run_mcw("sensitivity " + proj + " --settings w8,w2,s50 --windows 2");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("1.mlp.down_proj"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("42 cells: 0 computed, 42 cached"), std::string::npos) << text.out;

  const Result bad = run_mcw("sensitivity " + proj + " --settings w5");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("unknown setting 'w5'"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1);
}

TEST(CliSearch, SensitivityProxyMeasuresAreStoredApart) {
  const fs::path dir = fresh_dir("sens-measure");
  const std::string proj = make_project(dir);
  const std::string common = " --settings w8,w2 --windows 2 --calib-windows 4 --calib-window 32";
  const Result layer = run_mcw("sensitivity " + proj + common + " --measure layer --json");
  ASSERT_EQ(layer.code, 0) << layer.err;
  EXPECT_NE(layer.err.find("layer scan holds about"), std::string::npos) << layer.err;
  const auto jl = nlohmann::json::parse(layer.out);
  EXPECT_EQ(jl["measure"], "layer");
  EXPECT_EQ(jl["computed"], 28);
  EXPECT_EQ(jl["windows"], 4);
  ASSERT_EQ(jl["layer"].size(), 14u);
  for (const auto& row : jl["layer"]) EXPECT_LT(row[0].get<double>(), row[1].get<double>());
  // Another measure is another cache entry; the same one is read back.
  const auto jk = nlohmann::json::parse(run_mcw("sensitivity " + proj + common + " --json").out);
  EXPECT_EQ(jk["measure"], "kl");
  EXPECT_EQ(jk["computed"], 28);
  const auto again =
      nlohmann::json::parse(run_mcw("sensitivity " + proj + common + " --measure layer --json").out);
  EXPECT_EQ(again["cached"], 28);
  EXPECT_EQ(again["layer"], jl["layer"]);
  // Only some layers; the text table names its measure.
  const Result some = run_mcw("sensitivity " + proj + common + " --measure block --layers 1.mlp,0.self_attn.q");
  ASSERT_EQ(some.code, 0) << some.err;
  EXPECT_NE(some.out.find("relative output error of the block"), std::string::npos) << some.out;
  EXPECT_NE(some.out.find("8 cells: 8 computed"), std::string::npos) << some.out;
  const Result bad = run_mcw("sensitivity " + proj + " --measure mse");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("unknown measure 'mse'"), std::string::npos) << bad.err;
}

TEST(CliSearch, SearchWritesARecipeWithinTheBudget) {
  const fs::path dir = fresh_dir("search");
  const std::string proj = make_project(dir);
  const std::string out = (dir / "mix.yaml").string();
  const Result r = run_mcw(
      "search " + proj + " --budget 11bpw --generations 3 --offspring 4 --windows 2 --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("greedy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("evolved"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0.self_attn.q_proj"), std::string::npos) << r.out;
  // Candidates came from a bank of compressed layers beside the database, gone afterwards.
  EXPECT_NE(r.out.find("compressed layers: "), std::string::npos) << r.out;
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find("mcw-layer-bank"), std::string::npos) << e.path();
  // The recipe, run by the engine, meets the budget.
  const Recipe recipe = load_recipe(out);
  const CompressionResult c = compress_llama(load_llama((dir / "model").string()), recipe, {}, {});
  EXPECT_LE(c.bits_per_weight(), 11.0);
  EXPECT_GT(c.bits_per_weight(), 10.0);  // the budget is used, not wasted
  EXPECT_EQ(c.layers.size(), 14u);

  const Result none = run_mcw("search " + proj + " --budget 1bpw --no-evolve --out " + out + "2");
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("cannot be met"), std::string::npos) << none.err;
  EXPECT_FALSE(fs::exists(out + "2"));
  EXPECT_EQ(run_mcw("search " + proj).code, 1);  // no budget
  EXPECT_EQ(run_mcw("search " + proj + " --budget 4 --max-bytes 9").code, 1);
  // The greedy start from the cheap layer-local scan.
  const Result proxy = run_mcw("search " + proj + " --budget 11bpw --no-evolve --measure layer " +
                               "--calib-windows 2 --calib-window 32 --out " + out + "3");
  ASSERT_EQ(proxy.code, 0) << proxy.err;
  EXPECT_NE(proxy.out.find("greedy"), std::string::npos) << proxy.out;
  EXPECT_LE(compress_llama(load_llama((dir / "model").string()), load_recipe(out + "3"), {}, {})
                .bits_per_weight(),
            11.0);
  const Result lat =
      run_mcw("search " + proj + " --max-latency-ms 10000 --no-evolve --windows 1 --out " + out);
  ASSERT_EQ(lat.code, 0) << lat.err;
  EXPECT_NE(lat.out.find("outside the searched layers"), std::string::npos) << lat.out;
}

// mcw predict reads the scan the sensitivity command stored, predicts a mixed recipe, and
// --add puts it into the project so that mcw run records predicted beside measured.
TEST(CliSearch, PredictUsesTheStoredScanAndAddsTheRecipe) {
  const fs::path dir = fresh_dir("predict");
  const std::string proj = make_project(dir);
  ASSERT_EQ(run_mcw("sensitivity " + proj + " --settings w8,w4 --windows 2").code, 0);
  // Groups of 32 (the tiny model's width), per channel on the 40-wide down_proj: what the
  // scan's w8 and w4 fall back to on these layers.
  std::ofstream(dir / "mix.yaml")
      << "stages:\n"
         "  - {algorithm: rtn, bits: 8, group_size: 32, targets: [\"*layers.0.*\"], ignore: [\"*down*\"]}\n"
         "  - {algorithm: rtn, bits: 8, group_size: 0, targets: [\"*layers.0.mlp.down*\"]}\n"
         "  - {algorithm: rtn, bits: 4, group_size: 32, targets: [\"*layers.1.*\"], ignore: [\"*down*\"]}\n"
         "  - {algorithm: rtn, bits: 4, group_size: 0, targets: [\"*layers.1.mlp.down*\"]}\n";
  const Result g128 = run_mcw("predict " + proj + " --recipe w4g128-rtn");
  EXPECT_EQ(g128.code, 1);
  EXPECT_NE(g128.err.find("group_size 128 does not divide the 32 input columns"), std::string::npos)
      << g128.err;
  const std::string mix = (dir / "mix.yaml").string();
  const Result j = run_mcw("predict " + proj + " --recipe " + mix + " --windows 2 --json");
  ASSERT_EQ(j.code, 0) << j.err;
  const auto p = nlohmann::json::parse(j.out);
  EXPECT_EQ(p["layers"]["model.layers.0.mlp.up_proj.weight"], "w8");
  EXPECT_EQ(p["layers"]["model.layers.1.mlp.up_proj.weight"], "w4");
  EXPECT_GT(p["kl"].get<double>(), 0);
  // The same cells as the sensitivity command's, read back: the sum of its table's.
  const auto t = nlohmann::json::parse(
      run_mcw("sensitivity " + proj + " --settings w8,w4 --windows 2 --json").out);
  double sum = 0;
  for (size_t l = 0; l < t["layers"].size(); ++l)
    sum += t["kl"][l][t["layers"][l].get<std::string>().find("layers.0.") != std::string::npos ? 0 : 1]
               .get<double>();
  EXPECT_NEAR(p["kl"].get<double>(), sum, 1e-12 * sum);
  const Recipe recipe = load_recipe(mix);
  const CompressionResult c = compress_llama(load_llama((dir / "model").string()), recipe, {}, {});
  EXPECT_DOUBLE_EQ(p["bits_per_weight"].get<double>(), c.bits_per_weight());

  const Result add = run_mcw("predict " + proj + " --recipe " + mix + " --windows 2 --add mixed");
  ASSERT_EQ(add.code, 0) << add.err;
  EXPECT_NE(add.out.find("0 cells computed"), std::string::npos) << add.out;
  EXPECT_NE(add.out.find("(2 needed)"), std::string::npos) << add.out;
  ASSERT_TRUE(fs::exists(dir / "mixed.yaml"));
  EXPECT_EQ(load_project(proj).recipes.back().name, "mixed");
  const Result again = run_mcw("predict " + proj + " --recipe " + mix + " --add mixed");
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("already has a recipe named 'mixed'"), std::string::npos) << again.err;
  ASSERT_EQ(run_mcw("run " + proj).code, 0);
  const Result runs = run_mcw("runs list " + proj + " --json");
  ASSERT_EQ(runs.code, 0) << runs.err;
  EXPECT_NE(runs.out.find("predicted_kl"), std::string::npos) << runs.out;

  const Result whole = run_mcw("predict " + proj + " --recipe w8a8-smoothquant");
  EXPECT_EQ(whole.code, 1);
  EXPECT_NE(whole.err.find("cannot predict it"), std::string::npos) << whole.err;
}
