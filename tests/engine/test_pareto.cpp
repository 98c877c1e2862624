// Pareto fronts against a brute-force check of the definition on random points with many
// ties and duplicates (small integer coordinates), plus hand-worked cases.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/runs/pareto.h"
#include "engine/runs/run_pareto.h"

using namespace mcw;

namespace {

// Straight from the definition: i is in the front when no j is <= everywhere and < somewhere.
std::vector<size_t> brute_force(const std::vector<std::vector<double>>& pts) {
  std::vector<size_t> front;
  for (size_t i = 0; i < pts.size(); ++i) {
    bool keep = true;
    for (double v : pts[i]) keep &= !std::isnan(v);
    for (size_t j = 0; j < pts.size() && keep; ++j) {
      bool le = true, lt = false;
      for (size_t k = 0; k < pts[i].size(); ++k) {
        le &= pts[j][k] <= pts[i][k];
        lt |= pts[j][k] < pts[i][k];
      }
      if (le && lt) keep = false;
    }
    if (keep) front.push_back(i);
  }
  return front;
}

std::vector<std::vector<double>> random_points(std::mt19937& rng, size_t n, size_t k, int range) {
  std::uniform_int_distribution<int> d(0, range);
  std::vector<std::vector<double>> pts(n, std::vector<double>(k));
  for (auto& p : pts)
    for (double& v : p) v = d(rng);
  return pts;
}

}  // namespace

TEST(Pareto, HandWorked2d) {
  // (1,5) (2,2) (2,2) duplicate (3,1) (3,3) dominated by (2,2), (1,6) dominated by (1,5),
  // (4,1) dominated by (3,1) (same y, larger x).
  const std::vector<std::array<double, 2>> p = {{1, 5}, {2, 2}, {2, 2}, {3, 1},
                                                {3, 3}, {1, 6}, {4, 1}};
  EXPECT_EQ(pareto_front_2d(p), (std::vector<size_t>{0, 1, 2, 3}));
  EXPECT_TRUE(pareto_front_2d({}).empty());
  const std::vector<std::array<double, 2>> inf = {{1, INFINITY}, {NAN, 0}, {2, 0}};
  EXPECT_EQ(pareto_front_2d(inf), (std::vector<size_t>{0, 2}));  // NaN point left out
}

TEST(Pareto, HandWorked3d) {
  const std::vector<std::array<double, 3>> p = {{1, 1, 9}, {1, 9, 1}, {9, 1, 1}, {2, 2, 2},
                                                {2, 2, 3}, {1, 1, 9}, {5, 5, 5}, {1, 2, 9}};
  // (2,2,3) by (2,2,2); (5,5,5) by (2,2,2); (1,2,9) by (1,1,9); duplicates of (1,1,9) kept.
  EXPECT_EQ(pareto_front_3d(p), (std::vector<size_t>{0, 1, 2, 3, 5}));
}

TEST(Pareto, MatchesBruteForceWithTiesAndDuplicates) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    for (size_t k : {2u, 3u, 4u}) {
      const size_t n = size_t(rng() % 60);
      const int range = 1 + int(rng() % 8);  // small ranges: many ties and exact copies
      auto pts = random_points(rng, n, k, range);
      if (n > 3 && trial % 5 == 0) pts[rng() % n][rng() % k] = NAN;
      ASSERT_EQ(pareto_front(pts), brute_force(pts)) << "trial " << trial << " k " << k;
    }
  }
}

TEST(Pareto, MatchesBruteForceOnContinuousPoints) {
  std::mt19937 rng(5);
  std::normal_distribution<double> d;
  for (int trial = 0; trial < 20; ++trial) {
    // Anti-correlated objectives give large fronts, the hard case for the staircase.
    std::vector<std::vector<double>> pts(500, std::vector<double>(3));
    for (auto& p : pts) {
      p[0] = d(rng), p[1] = -p[0] + 0.3 * d(rng), p[2] = d(rng);
    }
    ASSERT_EQ(pareto_front(pts), brute_force(pts));
    std::vector<std::vector<double>> p2;
    for (auto& p : pts) p2.push_back({p[0], p[1]});
    ASSERT_EQ(pareto_front(p2), brute_force(p2));
  }
}

TEST(Pareto, RunsWithoutAMetricAreLeftOut) {
  auto run = [](std::vector<Metric> m) {
    RunRecord r;
    r.metrics = std::move(m);
    return r;
  };
  const std::vector<RunRecord> runs = {
      run({{"ppl", 10}, {"ms", 5}}), run({{"ppl", 12}, {"ms", 3}}), run({{"ppl", 1}}),
      run({{"ms", 4}, {"ppl", 11}, {"extra", 1}}), run({{"ppl", 13}, {"ms", 6}})};
  EXPECT_EQ(pareto_runs(runs, {"ppl", "ms"}), (std::vector<size_t>{0, 1, 3}));
}
