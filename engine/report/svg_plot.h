// Small SVG plots for reports, written as text with no dependencies: a scatter plot with a
// Pareto front, a heatmap and a horizontal bar chart. Every label is escaped (see
// escape_html), numbers are locale-independent, and the output is well-formed XML, so it
// can be inlined into HTML or saved as an .svg file (standalone adds the xmlns).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mcw {

// An axis from lo to hi, linear or logarithmic (log needs 0 < lo).
struct PlotAxis {
  double lo = 0, hi = 1;
  bool log = false;
  double fraction(double v) const;  // 0 at lo, 1 at hi
};

// About `target` round tick values (1, 2, 5 x 10^k steps) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
// Ticks for a log axis: powers of ten, with 2 and 5 x 10^k added when few decades are
// spanned, and nice linear ticks when less than one decade is.
std::vector<double> log_ticks(double lo, double hi);
// An axis over the finite values given (positive ones when log), padded by a margin and
// widened to the outer ticks; a sensible unit range when there are none.
PlotAxis fit_axis(const std::vector<double>& values, bool log, bool include_zero = false);
// True when the positive values span more than `decades` powers of ten (all positive).
bool spans_decades(const std::vector<double>& values, double decades);

struct ScatterPoint {
  double x = 0, y = 0;
  double size = 0;         // scales the radius between the smallest and largest; NaN: default
  std::string label;       // drawn beside the point when labels are on
  std::string tooltip;     // the point's <title>
  int64_t id = 0;          // written as data-id, so tests and scripts can find the point
  bool front = false;      // on the Pareto front: drawn filled and joined by the step line
  bool reference = false;  // e.g. the uncompressed baseline: drawn as a diamond
};

struct ScatterPlot {
  std::string title, x_label, y_label, size_label;
  bool log_x = false, log_y = false;
  bool label_points = true;
  bool front_legend = true;  // the legend's "Pareto front" and "other runs" entries
  int width = 680, height = 420;
  bool standalone = false;
  std::vector<ScatterPoint> points;  // points with a non-finite (or, on a log axis,
                                     // non-positive) coordinate are left out
};
// The front's step line joins the front points in x order along the edge of the region
// they dominate (both axes minimised).
std::string scatter_svg(const ScatterPlot& plot);

struct Heatmap {
  std::string title, value_label;
  std::vector<std::string> rows, columns;
  std::vector<double> values;  // rows x columns, row-major; NaN: not measured
  bool log_scale = false;      // colour by log10 of the value (positive values only)
  bool show_values = true;     // print the value in each cell when cells are big enough
  bool standalone = false;
};
// Throws std::invalid_argument when values.size() != rows.size() * columns.size().
std::string heatmap_svg(const Heatmap& map);

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per label; NaN: no bar
};
struct BarChart {
  std::string title, value_label;
  std::vector<std::string> labels;  // one row each, top to bottom
  std::vector<BarSeries> series;    // grouped bars per row, with a legend when several
  bool log_scale = false;
  int width = 680;
  bool standalone = false;
};
std::string bar_chart_svg(const BarChart& chart);

}  // namespace mcw
