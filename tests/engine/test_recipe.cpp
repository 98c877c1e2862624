// Recipe files: presets parse, defaults fill in, and every mistake is refused before work
// starts with file, line, key and the allowed values.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/core/error.h"
#include "engine/recipe/recipe.h"
#include "engine/train/recovery.h"

using namespace mcw;
using json = nlohmann::json;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_recipe(text, "r.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const std::vector<std::string> kNames = {
    "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.mlp.down_proj.weight", "model.layers.1.self_attn.q_proj.weight",
    "model.norm.weight", "lm_head.weight"};

}  // namespace

TEST(Recipe, EveryPresetParsesAndTargetsTheBlocks) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(MCW_SOURCE_DIR "/assets/recipes")) {
    const Recipe r = load_recipe(e.path().string());
    EXPECT_EQ(r.name, e.path().stem().string());
    EXPECT_FALSE(r.description.empty()) << r.name;
    ASSERT_FALSE(r.stages.empty());
    EXPECT_NO_THROW(check_targets(r, kNames)) << r.name;
    ++n;
  }
  EXPECT_EQ(n, 25);
}

TEST(Recipe, DefaultsFillInAndTypesAreKept) {
  const Recipe r = parse_recipe("stages:\n  - algorithm: gptq\n    bits: 3\n", "x.yaml");
  const json& p = r.stages[0].params;
  EXPECT_EQ(p["bits"], 3);
  EXPECT_EQ(p["group_size"], 128);
  EXPECT_EQ(p["act_order"], false);  // the reference's defaults: no act-order, no static groups
  EXPECT_EQ(p["static_groups"], false);
  EXPECT_DOUBLE_EQ(p["damp"].get<double>(), 0.01);
  EXPECT_EQ(r.stages[0].line, 2);
  EXPECT_EQ(stage_tensors(r.stages[0], kNames).size(), 3u);  // the three *_proj weights
}

TEST(Recipe, JsonIsAcceptedToo) {
  const Recipe r = parse_recipe(
      R"({"name": "j", "stages": [{"algorithm": "magnitude", "sparsity": 0.3,
          "targets": ["re:mlp"], "ignore": []}]})", "j.json");
  EXPECT_EQ(r.name, "j");
  EXPECT_DOUBLE_EQ(r.stages[0].params["sparsity"].get<double>(), 0.3);
  EXPECT_EQ(stage_tensors(r.stages[0], kNames), std::vector<std::string>{"model.layers.0.mlp.down_proj.weight"});
}

TEST(Recipe, BadRecipesNameFileLineKeyAndAllowedValues) {
  EXPECT_EQ(
      error_of("stages:\n  - algorithm: gptx\n"),
      "r.yaml: line 2: stage 1: unknown algorithm 'gptx' (known: rtn, gptq, awq, smoothquant, "
      "kmeans, magnitude, wanda, sparsegpt, svd, heads, channels, flap, channel_obs)");
  EXPECT_EQ(error_of("stages:\n  - algorithm: rtn\n    bits: 5\n"),
            "r.yaml: line 3: stage 1 (rtn): key 'bits': 5 is not allowed (allowed: 2, 3, 4, 8)");
  EXPECT_EQ(error_of("stages:\n  - algorithm: wanda\n    sparsity: 1.5\n"),
            "r.yaml: line 3: stage 1 (wanda): key 'sparsity': 1.5 is out of range (0 to 0.99)");
  EXPECT_EQ(error_of("stages:\n  - algorithm: rtn\n    bits: four\n"),
            "r.yaml: line 3: stage 1 (rtn): key 'bits' must be an integer, got 'four'");
  EXPECT_EQ(error_of("stages:\n  - algorithm: rtn\n    bitz: 4\n"),
            "r.yaml: line 3: stage 1 (rtn): unknown key 'bitz' (allowed: targets, ignore, bits, "
            "group_size, symmetric, mse_clip)");
  EXPECT_EQ(error_of("stages:\n  - algorithm: sparsegpt\n    pattern: \"3:4\"\n"),
            "r.yaml: line 3: stage 1 (sparsegpt): key 'pattern': '3:4' is not allowed (allowed: "
            "'unstructured', '2:4', '4:8')");
  EXPECT_EQ(error_of("stages:\n  - algorithm: wanda\n    scope: column\n"),
            "r.yaml: line 3: stage 1 (wanda): key 'scope': 'column' is not allowed (allowed: "
            "'layer', 'row')");
  EXPECT_EQ(error_of("stages:\n  - algorithm: awq\n    quantizer: kmeans\n"),
            "r.yaml: line 3: stage 1 (awq): key 'quantizer': 'kmeans' is not allowed (allowed: "
            "'rtn', 'gptq')");
  EXPECT_EQ(error_of("stages: []\n"), "r.yaml: line 1: 'stages' must be a non-empty list");
  EXPECT_EQ(error_of("stagez: []\n"),
            "r.yaml: line 1: unknown key 'stagez' (allowed: name, description, calibration, "
            "prediction, stages, activations, recovery)");
  EXPECT_EQ(error_of("activations: {bits: 6}\nstages:\n  - algorithm: rtn\n"),
            "r.yaml: line 1: activations: key 'bits': 6 is not allowed (allowed: 4, 8)");
  EXPECT_EQ(error_of("prediction: {kl: high}\nstages:\n  - algorithm: rtn\n"),
            "r.yaml: line 1: prediction: key 'kl' must be a number, got 'high'");
  EXPECT_EQ(error_of("prediction: {klx: 1}\nstages:\n  - algorithm: rtn\n")
                .find("r.yaml: line 1: prediction: unknown key 'klx' (allowed: measure, stages, kl, "),
            0u);
  EXPECT_EQ(error_of("prediction: 3\nstages:\n  - algorithm: rtn\n"),
            "r.yaml: line 1: 'prediction' must be a mapping");
  EXPECT_NE(error_of("stages:\n  - algorithm: rtn\n   bits: [\n").find("r.yaml: line "), std::string::npos);
  EXPECT_NE(error_of("stages:\n  - algorithm: rtn\n    targets: [\"re:(\"]\n").find("invalid regex"),
            std::string::npos);
}

TEST(Recipe, TargetThatMatchesNothingIsRefused) {
  const Recipe r = parse_recipe("stages:\n  - algorithm: rtn\n    targets: [\"*.qq_proj.*\"]\n", "t.yaml");
  try {
    check_targets(r, kNames);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "t.yaml: line 2: stage 1 (rtn): target '*.qq_proj.*' matches no tensor of the model");
  }
}

TEST(Recipe, GlobsAndRegexes) {
  EXPECT_TRUE(pattern_matches("model.layers.*_proj.weight", "model.layers.3.mlp.up_proj.weight"));
  EXPECT_FALSE(pattern_matches("model.layers.*_proj.weight", "model.norm.weight"));
  EXPECT_TRUE(pattern_matches("lm_?ead.*", "lm_head.weight"));
  EXPECT_TRUE(pattern_matches("re:layers\\.[02]\\.", "model.layers.2.x"));
  EXPECT_FALSE(pattern_matches("re:layers\\.[02]\\.", "model.layers.1.x"));
}

// A recovery section: checked against its keys and ranges, defaults filled in, written back
// by recipe_to_yaml and counted in the stages digest (which stays as it was without one).
TEST(Recipe, RecoverySectionIsCheckedAndKept) {
  const std::string stages = "stages:\n  - algorithm: rtn\n    bits: 4\n";
  const Recipe plain = parse_recipe(stages, "p.yaml");
  EXPECT_TRUE(plain.recovery.empty());
  const Recipe r = parse_recipe(stages + "recovery:\n  steps: 50\n  scaling: rora\n", "r.yaml");
  EXPECT_EQ(r.recovery["steps"], 50);
  EXPECT_EQ(r.recovery["scaling"], "rora");
  EXPECT_EQ(r.recovery["rank"], 8);  // a default
  const RecoveryOptions o = recovery_options(r.recovery);
  EXPECT_EQ(o.steps, 50);
  EXPECT_EQ(o.scaling, LoraScaling::Rora);
  const Recipe back = parse_recipe(recipe_to_yaml(r), "back.yaml");
  EXPECT_EQ(back.recovery, r.recovery);
  EXPECT_NE(recipe_stages_digest(r), recipe_stages_digest(plain));
  EXPECT_EQ(recipe_stages_digest(parse_recipe(recipe_to_yaml(plain), "x")), recipe_stages_digest(plain));
  auto refused = [&](const std::string& text, const std::string& phrase) {
    try {
      parse_recipe(stages + text, "bad.yaml");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.yaml"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  };
  refused("recovery:\n  stpes: 5\n", "unknown key 'stpes'");
  // Block-AP's section has keys of its own, and LoRA's are not among them.
  const Recipe b = parse_recipe(stages + "recovery: {method: block-ap, epochs: 3}\n", "b.yaml");
  EXPECT_EQ(b.recovery["train_windows"], 128);  // a default
  EXPECT_FALSE(b.recovery.contains("rank"));
  const RecoveryOptions bo = recovery_options(b.recovery);
  EXPECT_EQ(bo.method, RecoveryOptions::Method::BlockAp);
  EXPECT_EQ(bo.block_ap.epochs, 3);
  EXPECT_EQ(bo.block_ap.batch, 2);
  EXPECT_EQ(parse_recipe(recipe_to_yaml(b), "back.yaml").recovery, b.recovery);
  refused("recovery:\n  method: block-ap\n  rank: 4\n", "unknown key 'rank'");
  refused("recovery:\n  method: block-ap\n  quant_lr: 2\n", "out of range");
  refused("recovery:\n  scaling: dora\n", "not allowed");
  refused("recovery:\n  rank: 0\n", "out of range");
  refused("recovery: 5\n", "must be a mapping");
}

TEST(Recipe, YamlRoundTrip) {
  const Recipe r = load_recipe(MCW_SOURCE_DIR "/assets/recipes/w2g64-gptq-outliers.yaml");
  const Recipe back = parse_recipe(recipe_to_yaml(r), "back.yaml");
  EXPECT_EQ(back.name, r.name);
  EXPECT_EQ(back.calibration, r.calibration);
  ASSERT_EQ(back.stages.size(), 1u);
  EXPECT_EQ(back.stages[0].params, r.stages[0].params);
  EXPECT_EQ(back.stages[0].targets, r.stages[0].targets);
}
