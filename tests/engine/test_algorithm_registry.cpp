// The algorithm registry (engine/compress/algorithm.h): every entry is whole, and the
// parser, the scan and the estimate take what they know of an algorithm from it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/compress/algorithm.h"
#include "engine/compress/resource_estimate.h"
#include "engine/core/error.h"
#include "engine/recipe/recipe.h"
#include "engine/search/sensitivity_scan.h"
#include "engine/train/recovery.h"

namespace mcw {
namespace {

TEST(AlgorithmRegistry, EveryEntryIsWhole) {
  std::set<std::string> names;
  for (const CompressAlgorithm& a : compress_algorithms()) {
    SCOPED_TRACE(a.name);
    EXPECT_TRUE(names.insert(a.name).second) << "listed twice";
    EXPECT_TRUE(
        std::set<std::string>({"quantize", "prune", "low-rank", "structured"}).count(a.kind));
    EXPECT_FALSE(a.help.empty());
    ASSERT_NE(a.needs, nullptr);
    ASSERT_NE(a.cost, nullptr);
    EXPECT_EQ(int(a.compress_layer != nullptr) + int(a.compress_group != nullptr) +
                  int(a.run_stage != nullptr),
              1)
        << "exactly one way to compress";
    if (a.reshape) {
      EXPECT_NE(a.run_stage, nullptr) << "a change of shape is a whole-model stage";
    }
    if (a.sample_tokens || a.uncompressed_inputs) {
      EXPECT_NE(a.compress_group, nullptr);
    }
    // Groups exist only inside the calibration pass.
    if (a.compress_group) {
      EXPECT_NE(a.needs(nlohmann::json::object()), CalibrationNeed::None);
    }
    // Layer and group compressors get their statistics from the shared calibration pass;
    // only whole-model stages run a pass of their own.
    if (a.run_stage) {
      EXPECT_EQ(a.needs(nlohmann::json::object()), CalibrationNeed::OwnPass);
    } else {
      EXPECT_NE(a.needs(nlohmann::json::object()), CalibrationNeed::OwnPass);
    }
    std::set<std::string> keys;
    for (const ParamSpec& p : a.params) EXPECT_TRUE(keys.insert(p.key).second) << p.key << " twice";
  }
  EXPECT_EQ(find_algorithm("no-such-algorithm"), nullptr);
}

// No recipe makes a job run forever: every number a stage or the recovery stage can hold
// (iterations, steps, ranks, windows) is a listed value or inside a finite range the parser
// enforces, so the work is bounded (and cancellable, see docs/RELIABILITY.md).
TEST(AlgorithmRegistry, EveryNumberARecipeHoldsIsBounded) {
  auto check = [](const std::string& where, const std::vector<ParamSpec>& params) {
    for (const ParamSpec& p : params) {
      if (p.type != "int" && p.type != "number") continue;
      SCOPED_TRACE(where + "." + p.key);
      if (!p.allowed.empty()) continue;
      EXPECT_LT(p.min, p.max) << "no range";
      EXPECT_TRUE(std::isfinite(p.max)) << "no upper bound";
    }
  };
  for (const CompressAlgorithm& a : compress_algorithms()) check(a.name, a.params);
  check("recovery", recovery_params());
  // The parser holds a stage to the range: one past the top is refused.
  const ParamSpec& steps = *std::find_if(recovery_params().begin(), recovery_params().end(),
                                         [](const ParamSpec& p) { return p.key == "steps"; });
  auto with_steps = [](int64_t n) {
    return parse_recipe(
        "stages:\n  - algorithm: rtn\nrecovery:\n  steps: " + std::to_string(n) + "\n", "r.yaml");
  };
  EXPECT_EQ(with_steps(int64_t(steps.max)).recovery["steps"], int64_t(steps.max));
  EXPECT_THROW(with_steps(int64_t(steps.max) + 1), Error);
}

TEST(AlgorithmRegistry, TheParserFillsEveryDefaultOfTheSchema) {
  for (const CompressAlgorithm& a : compress_algorithms()) {
    SCOPED_TRACE(a.name);
    const Recipe r = parse_recipe("stages:\n  - algorithm: " + a.name + "\n", "test.yaml");
    ASSERT_EQ(r.stages.size(), 1u);
    for (const ParamSpec& p : a.params) {
      ASSERT_TRUE(r.stages[0].params.contains(p.key)) << p.key;
      EXPECT_EQ(r.stages[0].params[p.key], p.fallback) << p.key;
    }
    EXPECT_EQ(r.stages[0].params.size(), a.params.size());
  }
  try {
    parse_recipe("stages:\n  - algorithm: gptqq\n", "test.yaml");
    FAIL() << "an unknown algorithm was accepted";
  } catch (const Error& e) {
    for (const CompressAlgorithm& a : compress_algorithms())  // the message lists them all
      EXPECT_NE(std::string(e.what()).find(a.name), std::string::npos) << a.name;
  }
}

// The scan compresses one linear at a time: it takes every algorithm that can, and refuses
// the whole-model stages.
TEST(AlgorithmRegistry, TheScanTakesExactlyTheAlgorithmsThatCompressOneLinear) {
  for (const CompressAlgorithm& a : compress_algorithms()) {
    SCOPED_TRACE(a.name);
    const ScanSetting s{"x", a.name, nlohmann::json::object()};
    if (a.run_stage)
      EXPECT_THROW(scan_cell_recipe(s, "model.layers.0.mlp.up_proj.weight", 256), Error);
    else
      EXPECT_EQ(scan_cell_recipe(s, "model.layers.0.mlp.up_proj.weight", 256).stages.size(), 1u);
  }
}

// The estimate's compressed bytes are the algorithm's own stored_bytes summed over its
// targets (twice: the result keeps them, then re-orders), and its time grows with the
// algorithm's FLOPs.
TEST(AlgorithmRegistry, TheEstimateReadsEachAlgorithmsCostModel) {
  LlamaConfig c;
  c.dim = 256, c.n_heads = 4, c.n_kv_heads = 4, c.head_dim = 64, c.hidden_dim = 512, c.n_layers = 2,
  c.vocab_size = 1000;
  const ModelShape shape = model_shape(c);
  EstimateSettings settings;
  settings.gflops = 10;
  for (const CompressAlgorithm& a : compress_algorithms()) {
    SCOPED_TRACE(a.name);
    const Recipe r = parse_recipe("stages:\n  - algorithm: " + a.name + "\n", "test.yaml");
    double stored = 0, flops = 0;
    for (const LinearShape& l : shape.linears) {
      const CostShape cs{double(l.rows), double(l.cols),    64.0 * 256,
                         double(c.dim),  double(c.q_dim()), double(c.hidden_dim)};
      const LayerCost cost = a.cost(r.stages[0].params, cs);
      EXPECT_GT(cost.stored_bytes, 0);
      EXPECT_GT(cost.flops, 0);
      stored += cost.stored_bytes, flops += cost.flops;
    }
    const ResourceEstimate e = estimate_resources(shape, r, settings);
    EXPECT_NEAR(double(e.compressed_bytes), 2 * stored, 2.0 * double(shape.linears.size()));
    EXPECT_GT(e.compress_flops, flops);  // plus the relative error, statistics, forward pass
  }
}

}  // namespace
}  // namespace mcw
