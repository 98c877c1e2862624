// `mcw diff` end to end: a tiny model against its magnitude-pruned copy from `mcw compress`.
// The layers compress.json lists must show ~50 % sparsity and a value change, every other
// tensor none; the text table, --top, and the one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/cli/cli_test_util.h"

using namespace mcw;
using namespace mcw::test;
namespace fs = std::filesystem;

namespace {

struct Pruned {
  fs::path dir;
  std::set<std::string> touched;  // the layers compression.json says the recipe changed
};

Pruned tiny_model_and_pruned_copy() {
  Pruned p{fresh_dir("diff"), {}};
  write_tiny_model_and_text(p.dir);
  const Result c = run_mcw("compress " + (p.dir / "model").string() +
                           " --recipe sparse50-magnitude --out " + (p.dir / "pruned").string());
  EXPECT_EQ(c.code, 0) << c.err;
  const auto report = nlohmann::json::parse(slurp(p.dir / "pruned" / "compression.json"));
  for (const auto& l : report["layers"]) p.touched.insert(l["name"].get<std::string>());
  return p;
}

TEST(CliDiff, PrunedCopyShowsSparsityExactlyWhereTheRecipeTouched) {
  const Pruned p = tiny_model_and_pruned_copy();
  ASSERT_FALSE(p.touched.empty());
  const Result r =
      run_mcw("diff " + (p.dir / "model").string() + " " + (p.dir / "pruned").string() + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  size_t seen_touched = 0;
  for (const auto& t : doc["tensors"]) {
    const std::string name = t["name"];
    SCOPED_TRACE(name);
    ASSERT_EQ(t["status"], "compared");
    EXPECT_EQ(t["a"]["shape"], t["b"]["shape"]);
    EXPECT_EQ(t["a"]["dtype"], t["b"]["dtype"]);
    EXPECT_LT(t["sparsity_a"].get<double>(), 0.01);  // random weights have no zeros
    if (p.touched.count(name)) {
      ++seen_touched;
      EXPECT_NEAR(t["sparsity_b"].get<double>(), 0.5, 0.02);
      EXPECT_NEAR(t["changed_fraction"].get<double>(), 0.5, 0.02);
      // B is A with the pruned half zeroed: A-B and B have disjoint supports, so
      // |A-B|^2 + |B|^2 = |A|^2 and A.B = |B|^2, hence rel^2 + cosine^2 = 1.
      const double rel = t["relative_l2"], cos = t["cosine"];
      EXPECT_GT(rel, 0.05);
      EXPECT_NEAR(rel * rel + cos * cos, 1.0, 1e-9);
      EXPECT_TRUE(t["differs"].get<bool>());
    } else {
      EXPECT_EQ(t["relative_l2"].get<double>(), 0.0);
      EXPECT_EQ(t["max_abs_diff"].get<double>(), 0.0);
      EXPECT_EQ(t["cosine"].get<double>(), 1.0);
      EXPECT_FALSE(t["differs"].get<bool>());
    }
  }
  EXPECT_EQ(seen_touched, p.touched.size());
  const auto& s = doc["summary"];
  EXPECT_EQ(s["tensors"], doc["tensors"].size());
  EXPECT_EQ(s["differing"], p.touched.size());
  EXPECT_EQ(s["value_changed"], p.touched.size());
  EXPECT_EQ(s["only_in_a"], 0);
  EXPECT_EQ(s["only_in_b"], 0);
}

TEST(CliDiff, TableTopAndErrors) {
  const Pruned p = tiny_model_and_pruned_copy();
  const std::string a = (p.dir / "model").string(), b = (p.dir / "pruned").string();
  const Result r = run_mcw("diff " + a + " " + b);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("rel. L2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sparsity A->B"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" -> 50.0%"), std::string::npos) << r.out;
  const std::string summary = std::to_string(p.touched.size()) + " differ";
  EXPECT_NE(r.out.find(summary), std::string::npos) << r.out;

  // --top 2: the two most changed tensors, most changed first.
  const Result top = run_mcw("diff " + a + " " + b + " --top 2 --json");
  ASSERT_EQ(top.code, 0) << top.err;
  const auto all = nlohmann::json::parse(run_mcw("diff " + a + " " + b + " --json").out);
  const auto doc = nlohmann::json::parse(top.out);
  ASSERT_EQ(doc["tensors"].size(), 2u);
  double largest = 0;
  for (const auto& t : all["tensors"]) largest = std::max(largest, t["relative_l2"].get<double>());
  EXPECT_EQ(doc["tensors"][0]["relative_l2"].get<double>(), largest);
  EXPECT_GE(doc["tensors"][0]["relative_l2"].get<double>(),
            doc["tensors"][1]["relative_l2"].get<double>());

  // A corrupt second model: the reader's one line naming it.
  const std::string bad = (p.dir / "bad.safetensors").string();
  write_bytes(bad, std::string("\x10\x00\x00\x00\x00\x00\x00\x00{\"x\":", 13));
  const Result e = run_mcw("diff " + a + " " + bad);
  expect_one_line_error(e, "bad.safetensors", "bad.safetensors");
  EXPECT_TRUE(e.out.empty()) << e.out;
  EXPECT_EQ(run_mcw("diff " + a).code, 1);
  EXPECT_EQ(run_mcw("diff " + a + " " + b + " --top 0").code, 1);
}

}  // namespace
