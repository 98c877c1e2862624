// The trade-off plot's recovery links: where a run was fine-tuned after compression, where
// it stood before (a hollow square) and an arrow to where recovery brought it.
#include <QPainter>
#include <QPainterPath>
#include <cmath>

#include "widgets/tradeoff_plot.h"

namespace mcw::ui {

void TradeoffPlot::paintBeforeRecoveryMarker(QPainter& g, QPointF c, const QColor& colour) {
  g.setPen(QPen(colour, 1.4));
  g.setBrush(Qt::NoBrush);
  g.drawRect(QRectF(c - QPointF(4, 4), QSizeF(8, 8)));
}

void TradeoffPlot::paintRecoveryLinks(QPainter& g) const {
  QColor colour = palette().color(QPalette::WindowText);
  colour.setAlpha(170);
  for (const PlotPoint& p : points_) {
    if (!p.recovered) continue;
    const QPointF from = toScreen(p.x, p.before_y), to = toScreen(p.x, p.y);
    paintBeforeRecoveryMarker(g, from, colour);
    const QPointF d = to - from;
    const double len = std::hypot(d.x(), d.y()), r = radius(p);
    if (len <= r + 8) continue;  // too close to draw an arrow between them
    const QPointF u = d / len, a = from + u * 5, b = to - u * (r + 2);
    g.setPen(QPen(colour, 1.2, Qt::DashLine));
    g.drawLine(a, b);
    const QPointF n(-u.y(), u.x());
    QPainterPath head(b);
    head.lineTo(b - u * 6 + n * 3.5);
    head.lineTo(b - u * 6 - n * 3.5);
    head.closeSubpath();
    g.setPen(Qt::NoPen);
    g.setBrush(colour);
    g.drawPath(head);
  }
}

}  // namespace mcw::ui
