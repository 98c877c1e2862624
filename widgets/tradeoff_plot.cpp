#include "widgets/tradeoff_plot.h"

#include <QHelpEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QToolTip>
#include <algorithm>
#include <cmath>

namespace mcw::ui {

namespace {

constexpr double kMinRadius = 4.5, kMaxRadius = 13;
constexpr double kPad = kMaxRadius + 4;  // keeps the largest marker inside the frame
const QColor kRunColour(64, 128, 214), kFrontColour(232, 135, 30);

bool is_dark(const QPalette& p) { return p.color(QPalette::Base).lightness() < 128; }

QPainterPath diamond(QPointF c, double r) {
  QPainterPath path;
  path.moveTo(c.x(), c.y() - r);
  path.lineTo(c.x() + r, c.y());
  path.lineTo(c.x(), c.y() + r);
  path.lineTo(c.x() - r, c.y());
  path.closeSubpath();
  return path;
}

}  // namespace

TradeoffPlot::TradeoffPlot(QWidget* parent) : QWidget(parent) {
  setObjectName(QStringLiteral("tradeoffPlot"));
  setMouseTracking(true);
  setAttribute(Qt::WA_OpaquePaintEvent);
}

void TradeoffPlot::setData(const QList<PlotPoint>& points, const PlotAxis& x, const PlotAxis& y,
                           bool y_larger_is_better) {
  points_ = points;
  x_axis_ = x;
  y_axis_ = y;
  y_larger_better_ = y_larger_is_better;
  hovered_ = -1;
  computeRanges();
  update();
}

void TradeoffPlot::setSelected(qint64 id) {
  if (id == selected_) return;
  selected_ = id;
  update();
}

void TradeoffPlot::setEmptyText(const QString& text) {
  empty_text_ = text;
  update();
}

void TradeoffPlot::computeRanges() {
  max_size_ = 0;
  if (points_.isEmpty() && !whatif_.shown) {
    xr_ = yr_ = {0, 1};
    return;
  }
  xr_ = points_.isEmpty() ? Range{whatif_.x, whatif_.x} : Range{points_[0].x, points_[0].x};
  yr_ = points_.isEmpty() ? Range{whatif_.y, whatif_.y} : Range{points_[0].y, points_[0].y};
  if (whatif_.shown) {  // the what-if point, its band and the budget stay in view
    xr_.lo = std::min(xr_.lo, whatif_.x), xr_.hi = std::max(xr_.hi, whatif_.x);
    yr_.lo = std::min(yr_.lo, whatif_.y), yr_.hi = std::max(yr_.hi, whatif_.y);
    if (whatif_.y_hi > whatif_.y_lo)
      yr_.lo = std::min(yr_.lo, whatif_.y_lo), yr_.hi = std::max(yr_.hi, whatif_.y_hi);
  }
  if (std::isfinite(budget_x_)) xr_.lo = std::min(xr_.lo, budget_x_), xr_.hi = std::max(xr_.hi, budget_x_);
  for (const PlotPoint& p : points_) {
    xr_.lo = std::min(xr_.lo, p.x), xr_.hi = std::max(xr_.hi, p.x);
    if (p.x_hi > p.x_lo)  // the error bar fits too
      xr_.lo = std::min(xr_.lo, p.x_lo), xr_.hi = std::max(xr_.hi, p.x_hi);
    yr_.lo = std::min(yr_.lo, p.y), yr_.hi = std::max(yr_.hi, p.y);
    if (p.recovered) yr_.lo = std::min(yr_.lo, p.before_y), yr_.hi = std::max(yr_.hi, p.before_y);
    if (p.predicted) {  // the prediction and its band stay in view beside the run
      xr_.lo = std::min(xr_.lo, p.pred_x), xr_.hi = std::max(xr_.hi, p.pred_x);
      yr_.lo = std::min(yr_.lo, p.pred_y), yr_.hi = std::max(yr_.hi, p.pred_y);
      if (p.pred_y_hi > p.pred_y_lo)
        yr_.lo = std::min(yr_.lo, p.pred_y_lo), yr_.hi = std::max(yr_.hi, p.pred_y_hi);
    }
    max_size_ = std::max(max_size_, p.size);
  }
  for (Range* r : {&xr_, &yr_}) {
    if (r->hi - r->lo <= 1e-12 * std::max(1.0, std::abs(r->hi))) {
      const double d = r->hi != 0 ? std::abs(r->hi) * 0.05 : 1;
      r->lo -= d, r->hi += d;
    }
  }
}

// The legend's entries in order (marker and label each, the size note last as text only).
QStringList TradeoffPlot::legendLabels() const {
  QStringList labels{tr("run"), tr("Pareto front"), tr("baseline")};
  if (std::any_of(points_.begin(), points_.end(), [](const PlotPoint& p) { return p.x_busy; }))
    labels << tr("measured on a busy machine");
  if (std::any_of(points_.begin(), points_.end(), [](const PlotPoint& p) { return p.predicted; }))
    labels << tr("predicted");
  if (std::any_of(points_.begin(), points_.end(), [](const PlotPoint& p) { return p.recovered; }))
    labels << tr("before recovery");
  if (whatif_.shown) labels << tr("what-if");
  labels << tr("marker area ∝ model size");
  return labels;
}

double TradeoffPlot::legendWidth(const QFontMetricsF& fm, const QString& label, bool last) {
  return last ? fm.horizontalAdvance(label) : 16 + fm.horizontalAdvance(label) + 18;
}

// Rows the legend takes between `left` and `right`: it wraps rather than running off the
// widget once the optional entries (busy machine, predicted) are there too.
int TradeoffPlot::legendRows(double left, double right) const {
  const QFontMetricsF fm(font());
  const QStringList labels = legendLabels();
  int rows = 1;
  double x = left;
  for (qsizetype i = 0; i < labels.size(); ++i) {
    const double w = legendWidth(fm, labels[i], i + 1 == labels.size());
    if (x > left && x + w > right) ++rows, x = left;
    x += w;
  }
  return rows;
}

QRectF TradeoffPlot::plotArea() const {
  const QFontMetricsF fm(font());
  double step = 1;
  double label_w = 0;
  for (double t : ticks(yr_, &step))
    label_w = std::max(label_w, fm.horizontalAdvance(tickLabel(y_axis_, t, step)));
  const double left = label_w + fm.height() + 18, right = 18;
  const int rows = points_.isEmpty() && !whatif_.shown ? 1 : legendRows(left, width() - right);
  const double top = rows * fm.height() + (rows - 1) * 4 + 14, bottom = 2 * fm.height() + 16;
  return QRectF(left, top, std::max(10.0, width() - left - right),
                std::max(10.0, height() - top - bottom));
}

QPointF TradeoffPlot::toScreen(double x, double y) const {
  const QRectF in = plotArea().adjusted(kPad, kPad, -kPad, -kPad);
  return {in.left() + (x - xr_.lo) / (xr_.hi - xr_.lo) * in.width(),
          in.bottom() - (y - yr_.lo) / (yr_.hi - yr_.lo) * in.height()};
}

double TradeoffPlot::radius(const PlotPoint& p) const {
  if (max_size_ <= 0 || p.size <= 0) return kMinRadius;
  return std::max(kMinRadius, kMaxRadius * std::sqrt(p.size / max_size_));  // area ~ size
}

// 1-2-5 steps, about five of them across `r`.
QList<double> TradeoffPlot::ticks(const Range& r, double* step) const {
  const double span = r.hi - r.lo;
  const double raw = span / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double s = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      s = m * mag;
      break;
    }
  *step = s;
  QList<double> out;
  for (double t = std::ceil(r.lo / s) * s; t <= r.hi + s * 1e-9 && out.size() < 50; t += s)
    out.push_back(std::abs(t) < s * 1e-9 ? 0 : t);
  return out;
}

QString TradeoffPlot::tickLabel(const PlotAxis& axis, double v, double step) const {
  if (axis.format) return axis.format(v);
  const int decimals = std::clamp(int(-std::floor(std::log10(step) + 1e-9)), 0, 8);
  return QString::number(v, 'f', decimals);
}

QPointF TradeoffPlot::pointPosition(qint64 id) const {
  for (const PlotPoint& p : points_)
    if (p.id == id) return toScreen(p.x, p.y);
  return {};
}

QPointF TradeoffPlot::predictedPosition(qint64 id) const {
  for (const PlotPoint& p : points_)
    if (p.id == id && p.predicted) return toScreen(p.pred_x, p.pred_y);
  return {};
}

qint64 TradeoffPlot::pointAt(const QPointF& pos, bool* predicted) const {
  qint64 best = -1;
  double best_d = 1e300;
  bool best_predicted = false;
  auto consider = [&](const PlotPoint& p, QPointF at, bool is_predicted) {
    const QPointF d = at - pos;
    const double dist = std::hypot(d.x(), d.y());
    if (dist <= std::max(radius(p) + 3, 7.0) && dist < best_d)
      best = p.id, best_d = dist, best_predicted = is_predicted;
  };
  for (const PlotPoint& p : points_) consider(p, toScreen(p.x, p.y), false);
  // After every measured marker, so that a prediction right on its run loses the tie.
  for (const PlotPoint& p : points_)
    if (p.predicted) consider(p, toScreen(p.pred_x, p.pred_y), true);
  if (predicted) *predicted = best_predicted;
  return best;
}

void TradeoffPlot::paintEvent(QPaintEvent*) {
  QPainter g(this);
  g.setRenderHint(QPainter::Antialiasing);
  const QPalette& pal = palette();
  const bool dark = is_dark(pal);
  const QColor text = pal.color(QPalette::WindowText);
  g.fillRect(rect(), pal.color(QPalette::Window));
  const QRectF area = plotArea();
  g.fillRect(area, pal.color(QPalette::Base));
  const QFontMetricsF fm(font());
  if (points_.isEmpty() && !whatif_.shown) {
    QColor c = pal.color(QPalette::WindowText);
    c.setAlpha(170);
    g.setPen(c);
    g.drawText(area, Qt::AlignCenter | Qt::TextWordWrap, empty_text_);
    return;
  }

  // Visible data range: the inner rectangle's range stretched to the frame.
  const QRectF in = area.adjusted(kPad, kPad, -kPad, -kPad);
  const double sx = (xr_.hi - xr_.lo) / in.width(), sy = (yr_.hi - yr_.lo) / in.height();
  const Range xv{xr_.lo - kPad * sx, xr_.hi + kPad * sx},
      yv{yr_.lo - kPad * sy, yr_.hi + kPad * sy};

  QColor grid = text;
  grid.setAlpha(dark ? 40 : 30);
  QColor tick_text = text;
  tick_text.setAlpha(200);
  double step = 1;
  for (double t : ticks(xv, &step)) {
    const double px = toScreen(t, 0).x();
    g.setPen(QPen(grid, 0));
    g.drawLine(QPointF(px, area.top()), QPointF(px, area.bottom()));
    g.setPen(tick_text);
    const QString label = tickLabel(x_axis_, t, step);
    const double w = fm.horizontalAdvance(label);
    g.drawText(QPointF(std::clamp(px - w / 2, 0.0, width() - w), area.bottom() + fm.ascent() + 5),
               label);
  }
  for (double t : ticks(yv, &step)) {
    const double py = toScreen(0, t).y();
    g.setPen(QPen(grid, 0));
    g.drawLine(QPointF(area.left(), py), QPointF(area.right(), py));
    g.setPen(tick_text);
    const QString label = tickLabel(y_axis_, t, step);
    g.drawText(QPointF(area.left() - 6 - fm.horizontalAdvance(label), py + fm.ascent() / 2 - 1),
               label);
  }
  QColor frame = text;
  frame.setAlpha(110);
  g.setPen(QPen(frame, 1));
  g.setBrush(Qt::NoBrush);
  g.drawRect(area);

  // Axis titles.
  g.setPen(text);
  QFont bold = font();
  bold.setBold(true);
  g.setFont(bold);
  const QFontMetricsF bfm(bold);
  g.drawText(QRectF(area.left(), height() - bfm.height() - 4, area.width(), bfm.height()),
             Qt::AlignCenter, x_axis_.title);
  g.save();
  g.translate(4 + bfm.ascent(), area.center().y());
  g.rotate(-90);
  const QString y_title =
      y_axis_.title + (y_larger_better_ ? tr("  (higher is better)") : QString());
  g.drawText(QRectF(-area.height() / 2, -bfm.ascent(), area.height(), bfm.height()),
             Qt::AlignCenter, y_title);
  g.restore();
  g.setFont(font());

  // Legend above the frame, wrapped as legendRows() counts.
  {
    const QStringList labels = legendLabels();
    const double row_h = fm.height() + 4;
    double lx = area.left();
    double ly =
        area.top() - fm.height() / 2 - 6 - (legendRows(area.left(), width() - 18) - 1) * row_h;
    auto wrap = [&](const QString& label) {
      const double w = legendWidth(fm, label, label == labels.last());
      if (lx > area.left() && lx + w > width() - 18) lx = area.left(), ly += row_h;
    };
    auto entry = [&](auto draw_marker, const QString& label) {
      wrap(label);
      draw_marker(QPointF(lx + 6, ly));
      g.setPen(text);
      g.drawText(QPointF(lx + 16, ly + fm.ascent() / 2 - 1), label);
      lx += 16 + fm.horizontalAdvance(label) + 18;
    };
    entry(
        [&](QPointF c) {
          g.setPen(QPen(kRunColour.darker(130), 1));
          g.setBrush(kRunColour);
          g.drawEllipse(c, 4.5, 4.5);
        },
        tr("run"));
    entry(
        [&](QPointF c) {
          g.setPen(QPen(kFrontColour, 2));
          g.drawLine(c - QPointF(6, 3), c + QPointF(0, -3));
          g.drawLine(c + QPointF(0, -3), c + QPointF(0, 3));
          g.drawLine(c + QPointF(0, 3), c + QPointF(6, 3));
        },
        tr("Pareto front"));
    entry(
        [&](QPointF c) {
          g.setPen(QPen(text, 1));
          g.setBrush(pal.color(QPalette::Base));
          g.drawPath(diamond(c, 5.5));
        },
        tr("baseline"));
    if (std::any_of(points_.begin(), points_.end(), [](const PlotPoint& p) { return p.x_busy; }))
      entry(
          [&](QPointF c) {
            g.setPen(QPen(kRunColour.darker(130), 1));
            g.setBrush(kRunColour);
            g.drawEllipse(c, 4.5, 4.5);
            g.setPen(QPen(text, 1.2, Qt::DashLine));
            g.setBrush(Qt::NoBrush);
            g.drawEllipse(c, 7, 7);
          },
          tr("measured on a busy machine"));
    if (std::any_of(points_.begin(), points_.end(), [](const PlotPoint& p) { return p.predicted; }))
      entry(
          [&](QPointF c) {
            g.setPen(QPen(kRunColour, 1.8));
            g.setBrush(Qt::NoBrush);
            g.drawEllipse(c, 4.5, 4.5);
          },
          tr("predicted"));
    if (std::any_of(points_.begin(), points_.end(), [](const PlotPoint& p) { return p.recovered; }))
      entry([&](QPointF c) { paintBeforeRecoveryMarker(g, c, text); }, tr("before recovery"));
    if (whatif_.shown)
      entry(
          [&](QPointF c) {
            g.setPen(QPen(pal.color(QPalette::Highlight), 1.8));
            g.setBrush(Qt::NoBrush);
            g.drawRect(QRectF(c - QPointF(4.5, 4.5), QSizeF(9, 9)));
          },
          tr("what-if"));
    g.setPen(tick_text);
    wrap(labels.last());
    g.drawText(QPointF(lx, ly + fm.ascent() / 2 - 1), labels.last());
  }

  g.save();
  g.setClipRect(area);
  // The front as a staircase: each step holds y until the next front point's x.
  QList<PlotPoint> front;
  for (const PlotPoint& p : points_)
    if (p.front) front.push_back(p);
  std::sort(front.begin(), front.end(), [](const PlotPoint& a, const PlotPoint& b) {
    return a.x < b.x || (a.x == b.x && a.y < b.y);
  });
  if (front.size() > 1) {
    QPainterPath path(toScreen(front[0].x, front[0].y));
    for (qsizetype i = 1; i < front.size(); ++i) {
      path.lineTo(toScreen(front[i].x, front[i - 1].y));
      path.lineTo(toScreen(front[i].x, front[i].y));
    }
    QColor c = kFrontColour;
    c.setAlpha(220);
    g.setPen(QPen(c, 2, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin));
    g.setBrush(Qt::NoBrush);
    g.drawPath(path);
  }

  // Error bars of x (the spread over repetitions), under the markers.
  for (const PlotPoint& p : points_) {
    if (!(p.x_hi > p.x_lo)) continue;
    const QPointF a = toScreen(p.x_lo, p.y), b = toScreen(p.x_hi, p.y);
    g.setPen(QPen(tick_text, 1.2));
    g.drawLine(a, b);
    g.drawLine(a - QPointF(0, 4), a + QPointF(0, 4));
    g.drawLine(b - QPointF(0, 4), b + QPointF(0, 4));
  }
  // Predictions: a thin line from the hollow marker to its run and the predicted band of y
  // as a bar, both stopping at the hollow marker's ring so that it reads as hollow.
  auto run_colour = [&](const PlotPoint& p) {
    return p.front ? kFrontColour : (dark ? kRunColour.lighter(135) : kRunColour);
  };
  for (const PlotPoint& p : points_) {
    if (!p.predicted) continue;
    const QPointF c = toScreen(p.pred_x, p.pred_y), m = toScreen(p.x, p.y);
    const double r = radius(p);
    QColor line = run_colour(p);
    line.setAlpha(150);
    const QPointF d = m - c;
    const double len = std::hypot(d.x(), d.y());
    if (len > 2 * r) {
      g.setPen(QPen(line, 1));
      g.drawLine(c + d * (r / len), m - d * (r / len));
    }
    if (p.pred_y_hi > p.pred_y_lo) {
      const QPointF lo = toScreen(p.pred_x, p.pred_y_lo), hi = toScreen(p.pred_x, p.pred_y_hi);
      line.setAlpha(220);
      g.setPen(QPen(line, 1.2));
      if (lo.y() > c.y() + r) g.drawLine(lo, c + QPointF(0, r));
      if (hi.y() < c.y() - r) g.drawLine(hi, c - QPointF(0, r));
      g.drawLine(lo - QPointF(4, 0), lo + QPointF(4, 0));
      g.drawLine(hi - QPointF(4, 0), hi + QPointF(4, 0));
    }
  }
  paintRecoveryLinks(g);
  // Larger markers first, so small ones stay visible on top of them.
  QList<const PlotPoint*> order;
  for (const PlotPoint& p : points_) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(),
                   [](const PlotPoint* a, const PlotPoint* b) { return a->size > b->size; });
  for (const PlotPoint* p : order) {
    const QPointF c = toScreen(p->x, p->y);
    const double r = radius(*p);
    if (p->baseline) {
      g.setPen(QPen(p->front ? kFrontColour : text, p->front ? 2.2 : 1.5));
      QColor fill = pal.color(QPalette::Base);
      g.setBrush(fill);
      g.drawPath(diamond(c, r * 1.2));
    } else {
      QColor fill = p->front ? kFrontColour : (dark ? kRunColour.lighter(135) : kRunColour);
      fill.setAlpha(p->front ? 230 : 170);
      g.setPen(QPen(fill.darker(dark ? 80 : 140), p->front ? 1.6 : 1));
      g.setBrush(fill);
      g.drawEllipse(c, r, r);
    }
    if (p->x_busy) {  // a dashed ring: x measured on a busy machine
      g.setPen(QPen(text, 1.2, Qt::DashLine));
      g.setBrush(Qt::NoBrush);
      g.drawEllipse(c, r + 2.5, r + 2.5);
    }
    if (p->id == hovered_ && !hovered_predicted_) {
      g.setPen(QPen(text, 1));
      g.setBrush(Qt::NoBrush);
      g.drawEllipse(c, r + 3, r + 3);
    }
    if (p->id == selected_) {
      g.setPen(QPen(pal.color(QPalette::Highlight), 2.5));
      g.setBrush(Qt::NoBrush);
      g.drawEllipse(c, r + 4, r + 4);
    }
  }
  // The hollow markers over the filled ones: a prediction right on its run shows as a ring.
  for (const PlotPoint& p : points_) {
    if (!p.predicted) continue;
    const QPointF c = toScreen(p.pred_x, p.pred_y);
    const double r = radius(p);
    g.setPen(QPen(run_colour(p), 1.8));
    g.setBrush(Qt::NoBrush);
    g.drawEllipse(c, r, r);
    if (p.id == hovered_ && hovered_predicted_) {
      g.setPen(QPen(text, 1));
      g.drawEllipse(c, r + 3, r + 3);
    }
  }
  const QRectF budget_label = paintWhatIf(g);
  g.restore();

  // Names: the front, the baseline and the selected run first, then (when there are few
  // runs) the others, each only where it overlaps no name already written.
  QList<QRectF> taken;
  if (!budget_label.isEmpty()) taken.push_back(budget_label);
  auto label = [&](const PlotPoint& p, const QColor& colour) {
    const QPointF c = toScreen(p.x, p.y);
    const double r = radius(p) + (p.id == selected_ ? 5 : 3);
    const double w = fm.horizontalAdvance(p.label);
    const bool left = c.x() + r + w > area.right() - 2;
    const QRectF box(left ? c.x() - r - w : c.x() + r, c.y() - r * 0.5 - fm.ascent(), w,
                     fm.height());
    for (const QRectF& t : taken)
      if (t.intersects(box)) return;
    taken.push_back(box);
    g.setPen(colour);
    g.drawText(QPointF(box.left(), box.top() + fm.ascent()), p.label);
  };
  for (const PlotPoint& p : points_)
    if (p.front || p.baseline || p.id == selected_) label(p, text);
  if (points_.size() <= 15)
    for (const PlotPoint& p : points_)
      if (!(p.front || p.baseline || p.id == selected_)) label(p, tick_text);
}

bool TradeoffPlot::event(QEvent* e) {
  if (e->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(e);
    if (overWhatIf(help->pos())) {
      QToolTip::showText(help->globalPos(), whatif_.tooltip, this);
      return true;
    }
    bool predicted = false;
    const qint64 id = pointAt(help->pos(), &predicted);
    for (const PlotPoint& p : points_)
      if (p.id == id) {
        QToolTip::showText(help->globalPos(), predicted ? p.pred_tooltip : p.tooltip, this);
        return true;
      }
    QToolTip::hideText();
    e->ignore();
    return true;
  }
  return QWidget::event(e);
}

void TradeoffPlot::mouseMoveEvent(QMouseEvent* e) {
  bool predicted = false;
  const qint64 id = pointAt(e->position(), &predicted);
  setCursor(id >= 0 ? Qt::PointingHandCursor : Qt::ArrowCursor);
  if (id != hovered_ || predicted != hovered_predicted_) {
    hovered_ = id;
    hovered_predicted_ = predicted;
    update();
  }
}

void TradeoffPlot::mousePressEvent(QMouseEvent* e) {
  if (e->button() != Qt::LeftButton) return;
  const qint64 id = pointAt(e->position());
  if (id >= 0) emit pointClicked(id);
}

void TradeoffPlot::leaveEvent(QEvent*) {
  if (hovered_ >= 0) {
    hovered_ = -1;
    update();
  }
}

}  // namespace mcw::ui
