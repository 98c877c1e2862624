#include "widgets/recovery_curve_view.h"

#include <QPainter>
#include <QPainterPath>
#include <algorithm>
#include <cmath>

namespace mcw::ui {

namespace {

struct Span {
  double lo = 0, hi = 1;
};

Span span_of(const QList<QPointF>& s, bool y) {
  Span r{1e300, -1e300};
  for (const QPointF& p : s) {
    const double v = y ? p.y() : p.x();
    r.lo = std::min(r.lo, v), r.hi = std::max(r.hi, v);
  }
  if (s.isEmpty()) return {0, 1};
  if (r.hi - r.lo <= 1e-12 * std::max(1.0, std::abs(r.hi)))
    r.lo -= 0.5 * std::abs(r.lo) + 1e-9, r.hi += 0.5 * std::abs(r.hi) + 1e-9;
  return r;
}

}  // namespace

RecoveryCurveView::RecoveryCurveView(QWidget* parent) : QWidget(parent) {
  setObjectName(QStringLiteral("recoveryCurve"));
}

void RecoveryCurveView::setCurve(const QList<CurvePointRow>& points, const QString& title) {
  kl_.clear(), loss_.clear();
  for (const CurvePointRow& p : points) {
    if (p.series == QLatin1String("eval_kl")) kl_.push_back(QPointF(double(p.step), p.value));
    if (p.series == QLatin1String("loss")) loss_.push_back(QPointF(double(p.step), p.value));
  }
  auto by_step = [](const QPointF& a, const QPointF& b) { return a.x() < b.x(); };
  std::sort(kl_.begin(), kl_.end(), by_step);
  std::sort(loss_.begin(), loss_.end(), by_step);
  title_ = title;
  update();
}

void RecoveryCurveView::paintEvent(QPaintEvent*) {
  QPainter g(this);
  g.setRenderHint(QPainter::Antialiasing);
  const QPalette& pal = palette();
  const QColor text = pal.color(QPalette::WindowText), accent = pal.color(QPalette::Highlight);
  QColor faint = text;
  faint.setAlpha(120);
  const QFontMetricsF fm(font());
  g.fillRect(rect(), pal.color(QPalette::Base));
  g.setPen(text);
  g.drawText(QPointF(8, fm.ascent() + 4), title_);
  if (isEmpty()) return;

  const double left = fm.horizontalAdvance(QStringLiteral("0.0000")) + 12;
  const double right = fm.horizontalAdvance(QStringLiteral("0.00000")) + 8;
  const double top = fm.height() + 14;  // the title; below: the step row and the legend
  const QRectF area(left, top, std::max(10.0, width() - left - right),
                    std::max(10.0, height() - top - 2 * fm.height() - 14));
  QList<QPointF> all = kl_ + loss_;
  const Span xs = span_of(all, false), ky = span_of(kl_, true), ly = span_of(loss_, true);
  auto at = [&](double x, double y, const Span& s) {
    return QPointF(area.left() + (x - xs.lo) / (xs.hi - xs.lo) * area.width(),
                   area.bottom() - (y - s.lo) / (s.hi - s.lo) * area.height());
  };
  g.setPen(QPen(faint, 1));
  g.drawRect(area);
  // Axis ends: steps below, KL on the left, training loss on the right.
  auto number = [](double v) { return QString::number(v, 'g', 3); };
  g.drawText(QRectF(area.left(), area.bottom() + 2, 80, fm.height()), Qt::AlignLeft, number(xs.lo));
  g.drawText(QRectF(area.right() - 80, area.bottom() + 2, 80, fm.height()), Qt::AlignRight,
             number(xs.hi));
  g.drawText(QRectF(area.left(), area.bottom() + 2, area.width(), fm.height()), Qt::AlignHCenter,
             tr("step"));
  if (!kl_.isEmpty()) {
    g.setPen(accent);
    g.drawText(QRectF(0, area.top() - fm.height() / 2, left - 4, fm.height()), Qt::AlignRight,
               number(ky.hi));
    g.drawText(QRectF(0, area.bottom() - fm.height() / 2, left - 4, fm.height()), Qt::AlignRight,
               number(ky.lo));
  }
  if (!loss_.isEmpty()) {
    g.setPen(faint);
    g.drawText(QRectF(area.right() + 4, area.top() - fm.height() / 2, right, fm.height()),
               Qt::AlignLeft, number(ly.hi));
    g.drawText(QRectF(area.right() + 4, area.bottom() - fm.height() / 2, right, fm.height()),
               Qt::AlignLeft, number(ly.lo));
    QPainterPath path(at(loss_[0].x(), loss_[0].y(), ly));
    for (const QPointF& p : loss_) path.lineTo(at(p.x(), p.y(), ly));
    g.setPen(QPen(faint, 1));
    g.setBrush(Qt::NoBrush);
    g.drawPath(path);
  }
  if (!kl_.isEmpty()) {
    QPainterPath path(at(kl_[0].x(), kl_[0].y(), ky));
    for (const QPointF& p : kl_) path.lineTo(at(p.x(), p.y(), ky));
    g.setPen(QPen(accent, 2));
    g.drawPath(path);
    g.setBrush(accent);
    for (const QPointF& p : kl_) g.drawEllipse(at(p.x(), p.y(), ky), 3, 3);
  }
  // Legend under the axis.
  const double ly0 = height() - fm.height() / 2 - 4;
  g.setPen(QPen(accent, 2));
  g.drawLine(QPointF(left, ly0), QPointF(left + 14, ly0));
  g.setPen(text);
  const QString kl_label = tr("held-out KL (left)"), loss_label = tr("training loss (right)");
  g.drawText(QPointF(left + 18, ly0 + fm.ascent() / 2 - 1), kl_label);
  const double lx = left + 18 + fm.horizontalAdvance(kl_label) + 16;
  g.setPen(QPen(faint, 1));
  g.drawLine(QPointF(lx, ly0), QPointF(lx + 14, ly0));
  g.setPen(text);
  g.drawText(QPointF(lx + 18, ly0 + fm.ascent() / 2 - 1), loss_label);
}

}  // namespace mcw::ui
