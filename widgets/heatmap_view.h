// A layer × setting heatmap painted with QPainter: each cell coloured by log10 of its value
// (KL divergence, or a proxy's relative error) on a ramp whose luminance rises with it, a legend bar with the range,
// pending (not yet measured) cells hatched, and a tooltip per cell. Cells can arrive one
// at a time (setCell) while a scan runs. In assignment mode (setAssigning) it draws each
// row's chosen cell framed and kept rows' labels muted, and turns mouse presses, drags and
// keys into requests (assignPressed/assignDragged/assignKey) that the panel applies.
#pragma once
#include <QColor>
#include <QPair>
#include <QVector>
#include <QWidget>
#include <cmath>

namespace mcw::ui {

class HeatmapView : public QWidget {
  Q_OBJECT
 public:
  explicit HeatmapView(QWidget* parent = nullptr);

  // Rows and columns; every cell starts pending.
  void setAxes(const QStringList& rows, const QStringList& cols);
  void setCell(int row, int col, double value, double perplexity = std::nan(""));
  void setEmptyText(const QString& text);
  // The values' short name over the legend and in the tooltip ("KL" unless set).
  void setQuantity(const QString& name);
  const QString& quantity() const { return quantity_; }

  int rowCount() const { return int(rows_.size()); }
  int columnCount() const { return int(cols_.size()); }
  bool hasValue(int row, int col) const;
  // The colour scale: log10 of the lowest and highest measured value (a unit-wide range
  // around a single value); {0, 0} when nothing is measured.
  QPair<double, double> legendRange() const;
  QColor colorFor(double value) const;  // on the current legend range
  static QColor rampColor(double t);    // t in [0, 1], dark to light
  // "layer\nsetting\nKL 0.0123\nperplexity 12.3" (the quantity's name), or "... pending".
  QString hoverText(int row, int col) const;
  // One column per row (-1: kept) drawn over the cells; empty: none.
  void setAssignment(const QList<int>& columns);
  const QList<int>& assignment() const { return assignment_; }
  void setAssigning(bool on);
  bool assigning() const { return assigning_; }
  QPoint cursorCell() const { return cursor_; }  // (col, row) of the keyboard cursor
  QRect cellRect(int row, int col) const;
  QPoint cellAt(const QPoint& pos) const;  // (-1, -1) outside the grid

  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;

 signals:
  void cellClicked(int row, int col);
  // Assignment mode: a press on a cell, the pointer dragged onto another while pressed
  // (once per row it passed, each with the column under the pointer now),
  // and a key on the cursor's row (col -1: keep it; Space/Enter: the cursor's column;
  // 1-9: that column; Delete, Backspace or K: keep).
  void assignPressed(int row, int col);
  void assignDragged(int row, int col);
  void assignKey(int row, int col);

 protected:
  bool event(QEvent* e) override;
  void paintEvent(QPaintEvent* e) override;
  void mousePressEvent(QMouseEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent* e) override;
  void keyPressEvent(QKeyEvent* e) override;

 private:
  struct Cell {
    bool ready = false;
    double value = 0, perplexity = std::nan("");
  };
  void relayout();
  QRect legendRect() const;
  static QString shortLayer(const QString& name);

  QStringList rows_, cols_;
  QVector<Cell> cells_;
  QString empty_text_;
  QString quantity_ = QStringLiteral("KL");
  QList<int> assignment_;
  bool assigning_ = false, dragging_ = false;
  QPoint drag_cell_{-1, -1}, cursor_{0, 0};
  int label_w_ = 80, header_h_ = 22, cell_w_ = 44, cell_h_ = 18;
  static constexpr int kMargin = 6, kLegendW = 14, kLegendGap = 16, kLegendTextW = 64;
};

}  // namespace mcw::ui
