// The report's sensitivity grids read the engine scan's keyed metrics ("kl@8x256#<digest>",
// one digest per setting): one grid per quantity with every setting as a column, and
// where a setting was measured twice (another text), the measurement with more cells.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/report/report_tables.h"

using namespace mcw;

TEST(ReportSensitivityGrids, ScanKeysMakeOneGridPerQuantity) {
  ReportData d;
  d.model.tensors = {{"b", "F32", {2, 2}, 4, 16}, {"a", "F32", {2, 2}, 4, 16}};
  // w4 measured twice: #old on one layer, #new on both; w2 once.
  d.sensitivity = {{"a", "w4", "kl@8x256#old", 9.0},   {"a", "w4", "kl@8x256#new", 0.1},
                   {"b", "w4", "kl@8x256#new", 0.2},   {"a", "w2", "kl@8x256#two", 0.7},
                   {"a", "w4", "ppl@8x256#new", 11.0}, {"b", "w4", "ppl@8x256#new", 12.0},
                   {"a", "w2", "ppl@8x256#two", 15.0}};
  const std::vector<ReportGrid> g = report_sensitivity_grids(d);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].metric, "kl");
  EXPECT_EQ(g[1].metric, "ppl");
  EXPECT_EQ(g[0].rows, (std::vector<std::string>{"b", "a"}));  // model order
  EXPECT_EQ(g[0].columns, (std::vector<std::string>{"w2", "w4"}));
  ASSERT_EQ(g[0].values.size(), 4u);
  EXPECT_TRUE(std::isnan(g[0].values[0]));  // b w2: not measured
  EXPECT_EQ(g[0].values[1], 0.2);           // b w4
  EXPECT_EQ(g[0].values[2], 0.7);           // a w2
  EXPECT_EQ(g[0].values[3], 0.1);           // a w4: #new (2 cells) over #old (1)
  ASSERT_EQ(g[1].values.size(), 4u);
  EXPECT_TRUE(std::isnan(g[1].values[0]));
  EXPECT_EQ(g[1].values[1], 12.0);
  EXPECT_EQ(g[1].values[2], 15.0);
  EXPECT_EQ(g[1].values[3], 11.0);
}
