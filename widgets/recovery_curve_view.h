// A run's recovery curve, painted with QPainter: the held-out KL against the uncompressed
// model per step (left axis, markers at the evaluated steps) and the training loss (right
// axis, a thin line), so that an engineer sees whether recovery still improves or has
// levelled off. Hidden by its panel when the run has no curve.
#pragma once
#include <QList>
#include <QWidget>

#include "widgets/bridge_types.h"

namespace mcw::ui {

class RecoveryCurveView : public QWidget {
  Q_OBJECT
 public:
  explicit RecoveryCurveView(QWidget* parent = nullptr);
  void setCurve(const QList<CurvePointRow>& points, const QString& title);
  bool isEmpty() const { return kl_.isEmpty() && loss_.isEmpty(); }
  // The series as drawn, (step, value) in step order: for tests and tooltips.
  const QList<QPointF>& heldOutKl() const { return kl_; }
  const QList<QPointF>& trainingLoss() const { return loss_; }

  QSize minimumSizeHint() const override { return {240, 140}; }
  QSize sizeHint() const override { return {420, 180}; }

 protected:
  void paintEvent(QPaintEvent*) override;

 private:
  QList<QPointF> kl_, loss_;
  QString title_;
};

}  // namespace mcw::ui
