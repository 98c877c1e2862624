// The trade-off scatter, painted with QPainter: one marker per run at (x, y), its area
// proportional to the model's size, the Pareto front as a step line with its points
// ringed, the baseline as a diamond, the selected run ringed in the highlight colour, an x
// error bar where a point has a spread, a dashed ring where its x was measured on a busy
// machine, and where a run was predicted to land (a recipe written by mcw predict) a hollow
// marker joined to the measured one by a thin line, its predicted band of y as an error
// bar; where a run was recovered by fine-tuning, a hollow square at its y before recovery
// with an arrow to it. Axis ticks at 1-2-5 steps. Hovering shows a run's values, or its prediction on the
// hollow marker; clicking either marker emits the run's id.
// Colours come from the palette, so both themes work; QPainter takes care of high DPI.
#pragma once
#include <QFontMetricsF>
#include <QList>
#include <QPointF>
#include <QRectF>
#include <QStringList>
#include <QWidget>
#include <cmath>
#include <functional>

class QPainter;

namespace mcw::ui {

struct PlotPoint {
  qint64 id = 0;
  double x = 0, y = 0;
  double size = 0;  // marker area scales with it (bytes); 0: the smallest marker
  QString label;    // the recipe
  QString tooltip;  // rich text shown on hover
  bool baseline = false, front = false;
  // The x value's spread (an error bar from x_lo to x_hi; none when equal) and whether it
  // was measured on a busy machine (a dashed ring around the marker).
  double x_lo = 0, x_hi = 0;
  bool x_busy = false;
  // Where the run was predicted to be (an axis without a prediction takes the measured
  // value), the predicted band of y (none when equal) and the hollow marker's tooltip.
  bool predicted = false;
  double pred_x = 0, pred_y = 0;
  double pred_y_lo = 0, pred_y_hi = 0;
  QString pred_tooltip;
  // A run recovered by fine-tuning after compression: y before recovery (x is the same:
  // recovery keeps the layout), drawn as a hollow square with an arrow to the run.
  bool recovered = false;
  double before_y = 0;
};

// A point that is not a run: the what-if assignment's prediction (the Sensitivity
// panel's), drawn as a hollow cross-haired square in the highlight colour with its band of
// y as a dashed bar, and labelled.
struct WhatIfMarker {
  bool shown = false;
  double x = 0, y = 0;
  double y_lo = 0, y_hi = 0;  // the band (none when equal)
  QString label;              // beside the marker ("what-if")
  QString tooltip;            // rich text shown on hover
};

struct PlotAxis {
  QString title;
  std::function<QString(double)> format;  // tick labels; empty: a plain number
};

class TradeoffPlot : public QWidget {
  Q_OBJECT
 public:
  explicit TradeoffPlot(QWidget* parent = nullptr);

  void setData(const QList<PlotPoint>& points, const PlotAxis& x, const PlotAxis& y,
               bool y_larger_is_better);
  void setSelected(qint64 id);
  void setEmptyText(const QString& text);
  // The what-if point (tradeoff_plot_whatif.cpp); it keeps the axes' ranges in view of it.
  void setWhatIf(const WhatIfMarker& marker);
  const WhatIfMarker& whatIf() const { return whatif_; }
  QPointF whatIfPosition() const;  // invalid when not shown
  // A vertical dashed line at x (a budget on the cost axis) with its label; NaN: none.
  void setBudgetLine(double x, const QString& label);
  double budgetLine() const { return budget_x_; }

  int pointCount() const { return int(points_.size()); }
  const QList<PlotPoint>& points() const { return points_; }
  // Where a run's marker is drawn, in this widget's coordinates (invalid when absent).
  QPointF pointPosition(qint64 id) const;
  // Where a run's predicted (hollow) marker is drawn; invalid when it has none.
  QPointF predictedPosition(qint64 id) const;
  // The run whose marker, measured or predicted, is under `pos` (-1 when none); the
  // measured one wins a tie. `predicted` says which of the two it was.
  qint64 pointAt(const QPointF& pos, bool* predicted = nullptr) const;
  QRectF plotArea() const;

  QSize minimumSizeHint() const override { return {260, 200}; }
  QSize sizeHint() const override { return {480, 360}; }

 signals:
  void pointClicked(qint64 id);

 protected:
  void paintEvent(QPaintEvent*) override;
  bool event(QEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;
  void leaveEvent(QEvent*) override;

 private:
  struct Range {
    double lo = 0, hi = 1;
  };
  double radius(const PlotPoint& p) const;
  QPointF toScreen(double x, double y) const;
  QList<double> ticks(const Range& r, double* step) const;
  QString tickLabel(const PlotAxis& axis, double v, double step) const;
  void computeRanges();
  QStringList legendLabels() const;
  static double legendWidth(const QFontMetricsF& fm, const QString& label, bool last);
  int legendRows(double left, double right) const;
  // Inside the clipped plot area; returns the budget label's box (for the run labels to
  // avoid), empty when none.
  QRectF paintWhatIf(QPainter& g) const;
  bool overWhatIf(const QPointF& pos) const;
  // Arrows from before to after recovery (tradeoff_plot_recovery.cpp), under the markers.
  void paintRecoveryLinks(QPainter& g) const;
  static void paintBeforeRecoveryMarker(QPainter& g, QPointF c, const QColor& colour);

  QList<PlotPoint> points_;
  PlotAxis x_axis_, y_axis_;
  bool y_larger_better_ = false;
  Range xr_, yr_;
  double max_size_ = 0;
  qint64 selected_ = -1, hovered_ = -1;
  bool hovered_predicted_ = false;
  QString empty_text_;
  WhatIfMarker whatif_;
  double budget_x_ = std::nan("");
  QString budget_label_;
};

}  // namespace mcw::ui
