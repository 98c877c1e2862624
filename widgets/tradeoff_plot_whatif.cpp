// The trade-off plot's overlays that are not runs: the what-if point and a
// budget line.
#include <QPainter>

#include "widgets/tradeoff_plot.h"

namespace mcw::ui {

void TradeoffPlot::setWhatIf(const WhatIfMarker& marker) {
  whatif_ = marker;
  computeRanges();
  update();
}

void TradeoffPlot::setBudgetLine(double x, const QString& label) {
  budget_x_ = x;
  budget_label_ = label;
  computeRanges();
  update();
}

QPointF TradeoffPlot::whatIfPosition() const {
  return whatif_.shown ? toScreen(whatif_.x, whatif_.y) : QPointF();
}

bool TradeoffPlot::overWhatIf(const QPointF& pos) const {
  if (!whatif_.shown) return false;
  const QPointF d = toScreen(whatif_.x, whatif_.y) - pos;
  return std::abs(d.x()) <= 8 && std::abs(d.y()) <= 8;
}

QRectF TradeoffPlot::paintWhatIf(QPainter& g) const {
  const QPalette& pal = palette();
  const QRectF area = plotArea();
  const QFontMetricsF fm(font());
  QRectF taken;
  if (std::isfinite(budget_x_)) {
    const double x = toScreen(budget_x_, 0).x();
    QColor c = pal.color(QPalette::WindowText);
    c.setAlpha(160);
    g.setPen(QPen(c, 1.2, Qt::DashLine));
    g.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()));
    // On a box of the plot's background, so that it reads over the front's line.
    const double w = fm.horizontalAdvance(budget_label_) + 6;
    const bool left = x + 4 + w > area.right();
    const QRectF box(left ? x - 4 - w : x + 4, area.top() + 3, w, fm.height());
    QColor bg = pal.color(QPalette::Base);
    bg.setAlpha(220);
    g.fillRect(box, bg);
    g.drawText(box, Qt::AlignCenter, budget_label_);
    taken = box;
  }
  if (!whatif_.shown) return taken;
  const QColor hl = pal.color(QPalette::Highlight);
  const QPointF c = toScreen(whatif_.x, whatif_.y);
  constexpr double r = 6;
  if (whatif_.y_hi > whatif_.y_lo) {
    const QPointF lo = toScreen(whatif_.x, whatif_.y_lo), hi = toScreen(whatif_.x, whatif_.y_hi);
    g.setPen(QPen(hl, 1.4, Qt::DashLine));
    if (lo.y() > c.y() + r) g.drawLine(lo, c + QPointF(0, r));
    if (hi.y() < c.y() - r) g.drawLine(hi, c - QPointF(0, r));
    g.setPen(QPen(hl, 1.4));
    g.drawLine(lo - QPointF(5, 0), lo + QPointF(5, 0));
    g.drawLine(hi - QPointF(5, 0), hi + QPointF(5, 0));
  }
  g.setPen(QPen(hl, 2));
  g.setBrush(Qt::NoBrush);
  g.drawRect(QRectF(c - QPointF(r, r), QSizeF(2 * r, 2 * r)));
  g.drawLine(c - QPointF(r + 4, 0), c - QPointF(r - 3, 0));
  g.drawLine(c + QPointF(r - 3, 0), c + QPointF(r + 4, 0));
  if (!whatif_.label.isEmpty()) {
    const double w = fm.horizontalAdvance(whatif_.label);
    const bool left = c.x() + r + 6 + w > area.right() - 2;
    g.setPen(hl);
    g.drawText(QPointF(left ? c.x() - r - 6 - w : c.x() + r + 6, c.y() + r + fm.ascent()),
               whatif_.label);
  }
  return taken;
}

}  // namespace mcw::ui
