// Two runs side by side: every metric of A and B with the difference B − A (green where B
// is better), then the per-layer metrics layer by layer. Fed plain rows by the Runs
// panel; it knows neither the context nor the engine.
#pragma once
#include <QDialog>

#include "widgets/bridge_types.h"

class QTableWidget;

namespace mcw::ui {

class RunCompareView : public QDialog {
  Q_OBJECT
 public:
  enum MetricColumn { MetricName, MetricA, MetricB, MetricDelta, MetricRelative, MetricColumns };
  enum LayerColumn { Layer, LayerMetric, LayerA, LayerB, LayerDelta, LayerColumns };

  RunCompareView(const RunRow& a, const RunRow& b, const QList<LayerMetricRow>& layers_a,
                 const QList<LayerMetricRow>& layers_b, QWidget* parent = nullptr);

  QTableWidget* metricsTable() const { return metrics_; }
  QTableWidget* layersTable() const { return layers_; }

  // True when a smaller value of the metric is the better one (perplexity, latency, ...).
  static bool lowerIsBetter(const QString& metric);

 private:
  void fillMetrics(const RunRow& a, const RunRow& b);
  void fillLayers(const QList<LayerMetricRow>& a, const QList<LayerMetricRow>& b);

  QTableWidget* metrics_;
  QTableWidget* layers_;
};

}  // namespace mcw::ui
