#include "widgets/heatmap_view.h"

#include <QHelpEvent>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>
#include <algorithm>

namespace mcw::ui {

// KL of a layer that barely changed can be 0 (or a rounding error below): such cells are
// drawn at the bottom of the scale and do not stretch it, which spans positive values.
static constexpr double kKlFloor = 1e-300;

HeatmapView::HeatmapView(QWidget* parent) : QWidget(parent) {
  setObjectName(QStringLiteral("heatmapView"));
  setMouseTracking(true);
  setAttribute(Qt::WA_OpaquePaintEvent, false);
  relayout();
}

void HeatmapView::setAxes(const QStringList& rows, const QStringList& cols) {
  rows_ = rows;
  cols_ = cols;
  cells_ = QVector<Cell>(rows.size() * cols.size());
  relayout();
  update();
}

void HeatmapView::setQuantity(const QString& name) {
  quantity_ = name;
  update();
}

void HeatmapView::setCell(int row, int col, double value, double perplexity) {
  if (row < 0 || col < 0 || row >= rowCount() || col >= columnCount()) return;
  cells_[row * columnCount() + col] = {true, value, perplexity};
  update();  // the legend range may have moved: every cell may change colour
}

void HeatmapView::setEmptyText(const QString& text) {
  empty_text_ = text;
  update();
}

bool HeatmapView::hasValue(int row, int col) const {
  return row >= 0 && col >= 0 && row < rowCount() && col < columnCount() &&
         cells_[row * columnCount() + col].ready;
}

QPair<double, double> HeatmapView::legendRange() const {
  double lo = 0, hi = 0;
  bool any = false;
  for (const Cell& c : cells_) {
    if (!c.ready || !(c.value > 0)) continue;
    const double v = std::log10(std::max(c.value, kKlFloor));
    lo = any ? std::min(lo, v) : v;
    hi = any ? std::max(hi, v) : v;
    any = true;
  }
  if (!any) return {0, 0};
  if (hi - lo < 1e-12) return {lo - 0.5, hi + 0.5};
  return {lo, hi};
}

QColor HeatmapView::rampColor(double t) {
  // Dark navy -> purple -> rose -> orange -> pale yellow; the luminance of every stop is
  // above the one before, so brighter always means a larger divergence.
  static const QColor stops[] = {QColor(13, 27, 76), QColor(59, 42, 132), QColor(184, 59, 106),
                                 QColor(240, 127, 60), QColor(251, 232, 122)};
  constexpr int n = int(sizeof(stops) / sizeof(stops[0]));
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
  const double x = t * (n - 1);
  const int i = std::min(int(x), n - 2);
  const double f = x - i;
  auto mix = [f](int a, int b) { return int(std::lround(a + (b - a) * f)); };
  return QColor(mix(stops[i].red(), stops[i + 1].red()),
                mix(stops[i].green(), stops[i + 1].green()),
                mix(stops[i].blue(), stops[i + 1].blue()));
}

QColor HeatmapView::colorFor(double value) const {
  const auto [lo, hi] = legendRange();
  const double v = std::log10(std::max(value, kKlFloor));
  return rampColor(hi > lo ? (v - lo) / (hi - lo) : 0.5);
}

QString HeatmapView::hoverText(int row, int col) const {
  if (row < 0 || col < 0 || row >= rowCount() || col >= columnCount()) return {};
  const Cell& c = cells_[row * columnCount() + col];
  QString s = rows_[row] + QLatin1Char('\n') + tr("setting %1").arg(cols_[col]) + QLatin1Char('\n');
  if (row < assignment_.size())
    s += (assignment_[row] < 0 ? tr("layer kept")
                               : tr("layer set to %1").arg(cols_.value(assignment_[row]))) +
         QLatin1Char('\n');
  if (!c.ready) return s + tr("pending");
  s += tr("%1 %2").arg(quantity_).arg(c.value, 0, 'g', 4);
  if (std::isfinite(c.perplexity))
    s += QLatin1Char('\n') + tr("perplexity %1").arg(c.perplexity, 0, 'f', 3);
  return s;
}

QString HeatmapView::shortLayer(const QString& name) {
  QString s = name;
  if (s.startsWith(QLatin1String("model.layers."))) s = s.mid(13);
  if (s.endsWith(QLatin1String(".weight"))) s.chop(7);
  return s;
}

void HeatmapView::relayout() {
  const QFontMetrics fm = fontMetrics();
  label_w_ = 60;
  for (const QString& r : rows_)
    label_w_ = std::max(label_w_, fm.horizontalAdvance(shortLayer(r)) + 12);
  label_w_ = std::min(label_w_, 280);
  cell_w_ = 40;
  for (const QString& c : cols_) cell_w_ = std::max(cell_w_, fm.horizontalAdvance(c) + 10);
  cell_w_ = std::min(cell_w_, 120);
  cell_h_ = std::max(16, fm.height() + 2);
  header_h_ = fm.height() + 8;
  updateGeometry();
}

QRect HeatmapView::cellRect(int row, int col) const {
  return QRect(kMargin + label_w_ + col * cell_w_, kMargin + header_h_ + row * cell_h_, cell_w_,
               cell_h_);
}

QPoint HeatmapView::cellAt(const QPoint& pos) const {
  const int x = pos.x() - kMargin - label_w_, y = pos.y() - kMargin - header_h_;
  if (x < 0 || y < 0) return {-1, -1};
  const int col = x / cell_w_, row = y / cell_h_;
  if (row >= rowCount() || col >= columnCount()) return {-1, -1};
  return {col, row};
}

QRect HeatmapView::legendRect() const {
  const int x = kMargin + label_w_ + columnCount() * cell_w_ + kLegendGap;
  const int h = std::clamp(rowCount() * cell_h_, 120, 260);
  return QRect(x, kMargin + header_h_, kLegendW, h);
}

QSize HeatmapView::sizeHint() const {
  if (rows_.isEmpty()) return {360, 160};
  const QRect legend = legendRect();
  return {legend.right() + kLegendTextW + kMargin,
          std::max(kMargin + header_h_ + rowCount() * cell_h_, legend.bottom()) + kMargin + 4};
}

QSize HeatmapView::minimumSizeHint() const { return sizeHint(); }

bool HeatmapView::event(QEvent* e) {
  if (e->type() == QEvent::ToolTip) {
    auto* help = static_cast<QHelpEvent*>(e);
    const QPoint cell = cellAt(help->pos());
    if (cell.x() >= 0)
      QToolTip::showText(help->globalPos(), hoverText(cell.y(), cell.x()), this,
                         cellRect(cell.y(), cell.x()));
    else
      QToolTip::hideText();
    return true;
  }
  return QWidget::event(e);
}

void HeatmapView::setAssignment(const QList<int>& columns) {
  assignment_ = columns;
  update();
}

void HeatmapView::setAssigning(bool on) {
  assigning_ = on;
  dragging_ = false;
  setFocusPolicy(on ? Qt::StrongFocus : Qt::NoFocus);
  setCursor(on ? Qt::PointingHandCursor : Qt::ArrowCursor);
  update();
}

void HeatmapView::mousePressEvent(QMouseEvent* e) {
  const QPoint cell = cellAt(e->position().toPoint());
  if (cell.x() < 0) return;
  emit cellClicked(cell.y(), cell.x());
  if (!assigning_ || e->button() != Qt::LeftButton) return;
  setFocus(Qt::MouseFocusReason);
  cursor_ = cell;
  dragging_ = true;
  drag_cell_ = cell;
  emit assignPressed(cell.y(), cell.x());
}

void HeatmapView::mouseMoveEvent(QMouseEvent* e) {
  if (!dragging_) return;
  const QPoint cell = cellAt(e->position().toPoint());
  if (cell.x() < 0 || cell == drag_cell_) return;
  // Every row between the last one and this gets the same: a fast drag skips none.
  const int step = cell.y() >= drag_cell_.y() ? 1 : -1;
  for (int r = drag_cell_.y() + (cell.y() == drag_cell_.y() ? 0 : step); r != cell.y() + step; r += step)
    emit assignDragged(r, cell.x());
  drag_cell_ = cursor_ = cell;
}

void HeatmapView::mouseReleaseEvent(QMouseEvent*) { dragging_ = false; }

void HeatmapView::keyPressEvent(QKeyEvent* e) {
  if (!assigning_ || rows_.isEmpty() || cols_.isEmpty()) return QWidget::keyPressEvent(e);
  QPoint c = cursor_;
  const int key = e->key();
  if (key == Qt::Key_Up) c.ry() -= 1;
  else if (key == Qt::Key_Down) c.ry() += 1;
  else if (key == Qt::Key_Left) c.rx() -= 1;
  else if (key == Qt::Key_Right) c.rx() += 1;
  else if (key == Qt::Key_Space || key == Qt::Key_Return || key == Qt::Key_Enter)
    return emit assignKey(c.y(), c.x());
  else if (key == Qt::Key_Delete || key == Qt::Key_Backspace || key == Qt::Key_K)
    return emit assignKey(c.y(), -1);
  else if (key >= Qt::Key_1 && key <= Qt::Key_9 && key - Qt::Key_1 < columnCount())
    return emit assignKey(c.y(), key - Qt::Key_1);
  else
    return QWidget::keyPressEvent(e);
  cursor_ = {std::clamp(c.x(), 0, columnCount() - 1), std::clamp(c.y(), 0, rowCount() - 1)};
  update();
}

void HeatmapView::paintEvent(QPaintEvent*) {
  QPainter p(this);
  const QPalette pal = palette();
  p.fillRect(rect(), pal.base());
  if (rows_.isEmpty() || cols_.isEmpty()) {
    p.setPen(pal.color(QPalette::PlaceholderText));
    p.drawText(rect().adjusted(12, 12, -12, -12), Qt::AlignCenter | Qt::TextWordWrap, empty_text_);
    return;
  }
  const QFontMetrics fm = fontMetrics();
  p.setPen(pal.color(QPalette::Text));
  for (int c = 0; c < columnCount(); ++c) {
    const QRect head(cellRect(0, c).left(), kMargin, cell_w_, header_h_ - 2);
    p.drawText(head, Qt::AlignHCenter | Qt::AlignBottom,
               fm.elidedText(cols_[c], Qt::ElideRight, cell_w_ - 4));
  }
  QBrush pending(pal.color(QPalette::Mid), Qt::BDiagPattern);
  for (int r = 0; r < rowCount(); ++r) {
    const QRect label(kMargin, cellRect(r, 0).top(), label_w_ - 8, cell_h_);
    // Assignment mode: kept layers' names muted, assigned ones as usual.
    const bool kept = assigning_ && r < assignment_.size() && assignment_[r] < 0;
    p.setPen(pal.color(kept ? QPalette::PlaceholderText : QPalette::Text));
    p.drawText(label, Qt::AlignRight | Qt::AlignVCenter,
               fm.elidedText(shortLayer(rows_[r]), Qt::ElideLeft, label_w_ - 8));
    for (int c = 0; c < columnCount(); ++c) {
      const QRect cell = cellRect(r, c).adjusted(0, 0, -1, -1);
      const Cell& v = cells_[r * columnCount() + c];
      if (v.ready) {
        p.fillRect(cell, colorFor(v.value));
      } else {
        p.fillRect(cell, pal.color(QPalette::AlternateBase));
        p.fillRect(cell, pending);
      }
    }
  }
  // The assignment: each row's chosen cell framed in the highlight colour over a ring of
  // the base colour (visible on every ramp colour); the keyboard cursor dotted.
  for (int r = 0; r < std::min(rowCount(), int(assignment_.size())); ++r) {
    const int c = assignment_[r];
    if (c < 0 || c >= columnCount()) continue;
    const QRect cell = cellRect(r, c).adjusted(1, 1, -2, -2);
    p.setBrush(Qt::NoBrush);
    p.setPen(QPen(pal.color(QPalette::Base), 4));
    p.drawRect(cell);
    p.setPen(QPen(pal.color(QPalette::Highlight), 2));
    p.drawRect(cell);
  }
  if (assigning_ && hasFocus() && cursor_.y() < rowCount() && cursor_.x() < columnCount()) {
    p.setBrush(Qt::NoBrush);
    p.setPen(QPen(pal.color(QPalette::Text), 1, Qt::DotLine));
    p.drawRect(cellRect(cursor_.y(), cursor_.x()).adjusted(0, 0, -1, -1));
  }
  // Legend: the ramp from the lowest (bottom) to the highest (top) log10 value.
  const QRect bar = legendRect();
  const auto [lo, hi] = legendRange();
  for (int y = 0; y < bar.height(); ++y)
    p.fillRect(QRect(bar.left(), bar.bottom() - y, bar.width(), 1),
               rampColor(double(y) / std::max(1, bar.height() - 1)));
  p.setPen(pal.color(QPalette::Mid));
  p.drawRect(bar.adjusted(0, 0, -1, -1));
  p.setPen(pal.color(QPalette::Text));
  const bool measured =
      std::any_of(cells_.begin(), cells_.end(), [](const Cell& c) { return c.ready && c.value > 0; });
  auto tick = [&](double frac, const QString& text) {
    const int y = bar.bottom() - int(frac * (bar.height() - 1));
    p.drawLine(bar.right() + 1, y, bar.right() + 4, y);
    p.drawText(QRect(bar.right() + 6, y - fm.height() / 2, kLegendTextW, fm.height()),
               Qt::AlignLeft | Qt::AlignVCenter, text);
  };
  if (measured) {
    tick(1, QString::number(std::pow(10.0, hi), 'g', 2));
    tick(0.5, QString::number(std::pow(10.0, (lo + hi) / 2), 'g', 2));
    tick(0, QString::number(std::pow(10.0, lo), 'g', 2));
  }
  p.drawText(QRect(bar.left() - 4, kMargin, kLegendTextW, header_h_ - 2),
             Qt::AlignLeft | Qt::AlignBottom, quantity_);
}

}  // namespace mcw::ui
