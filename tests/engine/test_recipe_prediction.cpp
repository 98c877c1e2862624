// Predicting a recipe from a sensitivity scan: a single-layer recipe predicts exactly its
// cell, size and bits per weight match what compress_llama makes of the recipe, a recipe
// maps back to the assignment it was written from, and the calibration fits known lines.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/core/error.h"
#include "engine/runs/project_runner.h"
#include "engine/search/layer_latency.h"
#include "engine/search/mixed_precision.h"
#include "engine/search/recipe_prediction.h"
#include "llama_test_util.h"

using namespace mcw;

namespace {

struct Scanned {
  LlamaModel base;
  std::vector<int32_t> tokens;
  SensitivityTable table;
};

// tiny_config: 32-wide blocks (groups fall back to 32), a 40-input down_proj (per channel).
Scanned scan(const std::vector<std::string>& settings, uint32_t seed) {
  Scanned s{test::random_llama(test::tiny_config(), seed), {}, {}};
  s.tokens = test::random_tokens(200, s.base.cfg.vocab_size, seed + 1);
  SensitivityOptions so;
  so.settings.clear();
  for (const std::string& n : settings) so.settings.push_back(scan_setting_from_name(n));
  so.windows = 2;
  so.window = 32;
  s.table = SensitivityScan(s.base, "fp", s.tokens, so).run(nullptr);
  return s;
}

Recipe parse(const std::string& yaml) { return parse_recipe(yaml, "test.yaml"); }

}  // namespace

TEST(RecipePrediction, SingleLayerRecipePredictsItsCell) {
  const Scanned s = scan({"w8", "w4", "s50"}, 31);
  for (size_t l : {size_t(0), size_t(6), s.table.layers.size() - 1})
    for (size_t k = 0; k < s.table.settings.size(); ++k) {
      std::vector<int> a(s.table.layers.size(), -1);
      a[l] = int(k);
      const Recipe r = assignment_recipe(s.table, a, "one");
      ASSERT_EQ(r.stages.size(), 1u);
      EXPECT_EQ(recipe_assignment(s.table, r), a);
      const RecipePrediction p = predict_assignment(s.table, a);
      EXPECT_EQ(p.kl, s.table.at(l, k).kl) << s.table.layers[l] << " " << s.table.settings[k].name;
      EXPECT_EQ(p.compressed_layers, 1);
      EXPECT_TRUE(std::isnan(p.kl_low));  // no runs: no band
      EXPECT_TRUE(std::isnan(p.perplexity));
    }
}

TEST(RecipePrediction, SizeIsExactlyWhatCompressionMakes) {
  const Scanned s = scan({"w8", "w4", "w3g64", "s50"}, 32);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> pick(-1, int(s.table.settings.size()) - 1);
  for (int trial = 0; trial < 4; ++trial) {
    std::vector<int> a(s.table.layers.size());
    for (int& x : a) x = pick(rng);
    a[0] = 1;  // never all kept
    const RecipePrediction p = predict_assignment(s.table, a);
    const Recipe r = assignment_recipe(s.table, a, "mix", &p);
    const CompressionResult c = compress_llama(s.base, r, s.tokens, {});
    EXPECT_EQ(p.storage_bits, c.storage_bits) << trial;
    EXPECT_EQ(p.parameters, c.parameters);
    EXPECT_DOUBLE_EQ(p.bits_per_weight, c.bits_per_weight());
    double sum = 0;
    for (size_t l = 0; l < a.size(); ++l)
      if (a[l] >= 0) sum += s.table.at(l, size_t(a[l])).kl;
    EXPECT_DOUBLE_EQ(p.kl, sum);
  }
}

TEST(RecipePrediction, RecipeSettingsAreNamedAsTheScanNamesThem) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 33);
  // group_size 128 falls back to 32 on these layers in a scan cell; written out that way
  // by a mixed-precision recipe, it is still the one setting w4.
  const Recipe r = parse(R"(stages:
  - {algorithm: rtn, bits: 4, group_size: 32, symmetric: false, targets: ["*q_proj*", "*k_proj*"]}
  - {algorithm: rtn, bits: 4, group_size: 0, symmetric: false, targets: ["*down_proj*"]}
  - {algorithm: magnitude, sparsity: 0.25, targets: ["*up_proj*"]}
  - {algorithm: gptq, bits: 3, group_size: 32, targets: ["*o_proj*"]}
)");
  const std::vector<ScanSetting> s = recipe_scan_settings(r, base);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].name, "w4");
  EXPECT_EQ(s[1].name, "s25");
  EXPECT_EQ(s[2].name.rfind("gptq bits=3 group_size=32", 0), 0u) << s[2].name;
  // A grid column's label names its setting again: the cells' recipes are the same.
  for (const ScanSetting& x : s) {
    const ScanSetting back = scan_setting_from_label(x.name);
    EXPECT_EQ(back.algorithm, x.algorithm) << x.name;
    for (const char* layer : {"model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.down_proj.weight"}) {
      const int64_t in = std::string(layer).find("down") != std::string::npos ? 40 : 32;
      EXPECT_EQ(scan_cell_recipe(back, layer, in).stages.front().params,
                scan_cell_recipe(x, layer, in).stages.front().params) << x.name;
    }
  }
  EXPECT_EQ(scan_setting_from_label("gptq bits=3 act_order=false").params,
            (nlohmann::json{{"bits", 3}, {"act_order", false}}));
  EXPECT_EQ(scan_setting_from_label("w3g64").algorithm, "rtn");
  for (const char* bad : {"nope bits=3", "gptq bits", "gptq colour=3", "gptq =3", "w5"})
    EXPECT_THROW(scan_setting_from_label(bad), Error) << bad;

  const Recipe twice = parse(R"(stages:
  - {algorithm: rtn, bits: 4, group_size: 32, targets: ["*q_proj*"]}
  - {algorithm: magnitude, sparsity: 0.5, targets: ["*layers.0.*"]}
)");
  try {
    recipe_scan_settings(twice, base);
    FAIL() << "two stages on one layer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("one setting per layer"), std::string::npos) << e.what();
  }
  const Recipe whole = parse("stages:\n  - {algorithm: smoothquant}\n");
  EXPECT_THROW(recipe_scan_settings(whole, base), Error);
}

TEST(RecipePrediction, AStageTheScanDidNotMeasureIsNamed) {
  const Scanned s = scan({"w8", "w4"}, 34);
  const Recipe r =
      parse("stages:\n  - {algorithm: rtn, bits: 3, group_size: 32, targets: [\"*q_proj*\"]}\n");
  try {
    recipe_assignment(s.table, r);
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("test.yaml"), std::string::npos) << m;
    EXPECT_NE(m.find("q_proj"), std::string::npos) << m;
    EXPECT_NE(m.find("w8, w4"), std::string::npos) << m;
  }
}

TEST(RecipePrediction, PredictionTravelsWithTheRecipeAndItsStages) {
  const Scanned s = scan({"w8", "w4"}, 35);
  std::vector<int> a(s.table.layers.size(), 1);
  a[2] = -1, a[3] = 0;
  const RecipePrediction p = predict_assignment(s.table, a);
  const Recipe r = assignment_recipe(s.table, a, "mix", &p);
  const Recipe back = parse(recipe_to_yaml(r));
  EXPECT_EQ(recipe_assignment(s.table, back), a);
  EXPECT_EQ(back.prediction["stages"], recipe_stages_digest(back));
  EXPECT_DOUBLE_EQ(back.prediction["kl"].get<double>(), p.kl);
  EXPECT_DOUBLE_EQ(back.prediction["bits_per_weight"].get<double>(), p.bits_per_weight);
  EXPECT_EQ(back.prediction["measure"], "kl");
  EXPECT_FALSE(back.prediction.contains("perplexity"));  // unknown: not written
  // A search's budget travels the same way.
  Recipe searched = r;
  searched.prediction["budget_size_bytes"] = 123456.0;
  EXPECT_DOUBLE_EQ(parse(recipe_to_yaml(searched)).prediction["budget_size_bytes"].get<double>(),
                   123456.0);
  Recipe edited = back;
  edited.stages[0].params["bits"] = 3;
  EXPECT_NE(recipe_stages_digest(edited), recipe_stages_digest(back));
  // Every layer kept: nothing to run.
  EXPECT_THROW(assignment_recipe(s.table, std::vector<int>(a.size(), -1), "none"), Error);
}

TEST(RecipePrediction, CalibrationFitsTheProjectsRuns) {
  auto run = [](const std::string& recipe, double ppl, double kl, double predicted) {
    RunRecord r;
    r.info.recipe_name = recipe;
    r.info.model_fingerprint = "fp";
    r.info.status = RunStatus::Done;
    r.metrics = {{"perplexity", ppl}, {"kl", kl}};
    if (predicted > 0) r.metrics.push_back({"predicted_kl", predicted});
    return r;
  };
  // log(ppl / 10) = 2·KL exactly; measured KL = 1.5 × or 2 × the prediction.
  std::vector<RunRecord> runs = {
      run(kBaselineRecipe, 10, 0, 0),
      run("a", 10 * std::exp(2 * 0.3), 0.3, 0.2),
      run("b", 10 * std::exp(2 * 0.1), 0.1, 0.05),
      run("c", 10 * std::exp(2 * 0.5), 0.5, 0),
  };
  runs.push_back(run("other model", 99, 0.2, 0.1));
  runs.back().info.model_fingerprint = "other";
  runs.push_back(run("failed", 99, 0.2, 0.1));
  runs.back().info.status = RunStatus::Failed;
  const PredictionCalibration c = calibrate_prediction(runs, "fp");
  EXPECT_EQ(c.baseline_perplexity, 10);
  EXPECT_EQ(c.perplexity_runs, 3);
  EXPECT_NEAR(c.perplexity_slope, 2.0, 1e-12);
  EXPECT_NEAR(c.perplexity_residual_sd, 0.0, 1e-12);
  EXPECT_EQ(c.kl_runs, 2);
  const double m = (std::log(1.5) + std::log(2.0)) / 2;
  EXPECT_NEAR(c.log_ratio_mean, m, 1e-12);
  EXPECT_NEAR(c.log_ratio_sd, std::sqrt(2 * std::pow(std::log(2.0) - m, 2)), 1e-12);

  const Scanned s = scan({"w4"}, 36);
  std::vector<int> a(s.table.layers.size(), 0);
  const RecipePrediction p = predict_assignment(s.table, a, c);
  EXPECT_LE(p.kl_low, p.kl);
  EXPECT_GE(p.kl_high, p.kl * 2.0);  // both runs measured more than predicted
  EXPECT_NEAR(p.perplexity, 10 * std::exp(2 * p.kl * std::exp(m)), 1e-9);
  EXPECT_LT(p.perplexity_low, p.perplexity);
  EXPECT_GT(p.perplexity_high, p.perplexity);
}

TEST(RecipePrediction, LatencyAddsUpWithKeptLayersAtTheirDenseTime) {
  const Scanned s = scan({"w8", "w4"}, 37);
  LayerLatencyTable lt;
  lt.layers = s.table.layers;
  lt.settings = {"w8", "w4"};
  lt.rest_ms = 0.5;
  for (size_t l = 0; l < lt.layers.size(); ++l) {
    lt.ms.push_back(0.02), lt.ms.push_back(0.01);
    lt.dense_ms.push_back(0.04);
  }
  std::vector<int> a(s.table.layers.size(), 1);
  a[0] = -1, a[1] = 0;
  const RecipePrediction p = predict_assignment(s.table, a, {}, &lt);
  EXPECT_NEAR(p.latency_ms, 0.5 + 0.04 + 0.02 + 0.01 * double(a.size() - 2), 1e-12);
}
