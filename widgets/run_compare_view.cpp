#include "widgets/run_compare_view.h"

#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>

namespace mcw::ui {

namespace {

// Where the metrics go first; the rest follow by name.
const QStringList kMetricOrder = {QStringLiteral("perplexity"),
                                  QStringLiteral("kl"),
                                  QStringLiteral("top1"),
                                  QStringLiteral("bits_per_weight"),
                                  QStringLiteral("size_bytes"),
                                  QStringLiteral("latency_ms_per_token"),
                                  QStringLiteral("prefill_tokens_per_s"),
                                  QStringLiteral("nll"),
                                  QStringLiteral("parameters"),
                                  QStringLiteral("compress_seconds")};

QTableWidgetItem* number_item(double v, bool present = true) {
  auto* item = new QTableWidgetItem(present ? QString::number(v, 'g', 6) : QStringLiteral("–"));
  item->setData(Qt::UserRole, v);
  item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
  return item;
}

QTableWidget* make_table(const QStringList& headers, QWidget* parent) {
  auto* t = new QTableWidget(0, int(headers.size()), parent);
  t->setHorizontalHeaderLabels(headers);
  t->verticalHeader()->hide();
  t->setEditTriggers(QAbstractItemView::NoEditTriggers);
  t->setSelectionBehavior(QAbstractItemView::SelectRows);
  t->setAlternatingRowColors(true);
  t->horizontalHeader()->setStretchLastSection(true);
  t->verticalHeader()->setDefaultSectionSize(t->fontMetrics().height() + 6);
  return t;
}

// Green when B improves on A, red when it is worse; nothing for metrics without a
// direction (counts, settings).
void colour_delta(QTableWidgetItem* item, const QString& metric, double delta) {
  static const QStringList neutral = {QStringLiteral("eval_scored_tokens"),
                                      QStringLiteral("eval_window"), QStringLiteral("eval_stride"),
                                      QStringLiteral("parameters")};
  if (delta == 0 || !std::isfinite(delta) || neutral.contains(metric)) return;
  const bool better = RunCompareView::lowerIsBetter(metric) ? delta < 0 : delta > 0;
  item->setForeground(better ? QColor(60, 170, 90) : QColor(224, 80, 74));
}

}  // namespace

bool RunCompareView::lowerIsBetter(const QString& metric) {
  return metric != QLatin1String("top1") && metric != QLatin1String("prefill_tokens_per_s");
}

RunCompareView::RunCompareView(const RunRow& a, const RunRow& b,
                               const QList<LayerMetricRow>& layers_a,
                               const QList<LayerMetricRow>& layers_b, QWidget* parent)
    : QDialog(parent) {
  setObjectName(QStringLiteral("runCompareView"));
  setWindowTitle(tr("Compare run #%1 and #%2").arg(a.id).arg(b.id));
  auto* heading = new QLabel(
      tr("<b>A</b>: #%1 %2 (%3) &nbsp;&nbsp; <b>B</b>: #%4 %5 (%6) &nbsp;&nbsp; Δ = B − A")
          .arg(a.id)
          .arg(a.recipe.toHtmlEscaped(), a.status)
          .arg(b.id)
          .arg(b.recipe.toHtmlEscaped(), b.status),
      this);
  metrics_ = make_table({tr("Metric"), tr("A"), tr("B"), tr("Δ"), tr("Δ %")}, this);
  metrics_->setObjectName(QStringLiteral("compareMetrics"));
  layers_ = make_table({tr("Layer"), tr("Metric"), tr("A"), tr("B"), tr("Δ")}, this);
  layers_->setObjectName(QStringLiteral("compareLayers"));
  fillMetrics(a, b);
  fillLayers(layers_a, layers_b);

  auto* split = new QSplitter(Qt::Vertical, this);
  split->addWidget(metrics_);
  split->addWidget(layers_);
  split->setStretchFactor(1, 2);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(heading);
  layout->addWidget(split, 1);
  resize(760, 640);
}

void RunCompareView::fillMetrics(const RunRow& a, const RunRow& b) {
  QStringList names;
  for (const QString& m : kMetricOrder)
    if (a.metrics.contains(m) || b.metrics.contains(m)) names << m;
  QStringList rest;
  for (const QString& m : a.metrics.keys() + b.metrics.keys())
    if (!names.contains(m) && !rest.contains(m)) rest << m;
  rest.sort();
  names += rest;
  metrics_->setRowCount(int(names.size()));
  for (int i = 0; i < names.size(); ++i) {
    const QString& m = names[i];
    const bool has_a = a.metrics.contains(m), has_b = b.metrics.contains(m);
    const double va = a.metrics.value(m), vb = b.metrics.value(m);
    metrics_->setItem(i, MetricName, new QTableWidgetItem(m));
    metrics_->setItem(i, MetricA, number_item(va, has_a));
    metrics_->setItem(i, MetricB, number_item(vb, has_b));
    const bool both = has_a && has_b;
    auto* delta = number_item(vb - va, both);
    if (both) colour_delta(delta, m, vb - va);
    metrics_->setItem(i, MetricDelta, delta);
    const bool rel = both && va != 0;
    auto* relative = new QTableWidgetItem(rel ? QStringLiteral("%1%2 %")
                                                    .arg(vb >= va ? "+" : "")
                                                    .arg((vb - va) / std::abs(va) * 100, 0, 'f', 2)
                                              : QStringLiteral("–"));
    relative->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    if (rel) colour_delta(relative, m, vb - va);
    metrics_->setItem(i, MetricRelative, relative);
  }
  metrics_->resizeColumnsToContents();
}

void RunCompareView::fillLayers(const QList<LayerMetricRow>& a, const QList<LayerMetricRow>& b) {
  // Keyed by (layer, metric) in A's order, then what only B has in B's order.
  QList<QPair<QString, QString>> keys;
  QHash<QPair<QString, QString>, double> va, vb;
  for (const LayerMetricRow& r : a) {
    const auto k = qMakePair(r.layer, r.name);
    if (!va.contains(k)) keys << k;
    va.insert(k, r.value);
  }
  for (const LayerMetricRow& r : b) {
    const auto k = qMakePair(r.layer, r.name);
    if (!va.contains(k) && !vb.contains(k)) keys << k;
    vb.insert(k, r.value);
  }
  layers_->setRowCount(int(keys.size()));
  for (int i = 0; i < keys.size(); ++i) {
    const auto& k = keys[i];
    const bool has_a = va.contains(k), has_b = vb.contains(k);
    layers_->setItem(i, Layer, new QTableWidgetItem(k.first));
    layers_->setItem(i, LayerMetric, new QTableWidgetItem(k.second));
    layers_->setItem(i, LayerA, number_item(va.value(k), has_a));
    layers_->setItem(i, LayerB, number_item(vb.value(k), has_b));
    auto* delta = number_item(vb.value(k) - va.value(k), has_a && has_b);
    if (has_a && has_b) colour_delta(delta, k.second, vb.value(k) - va.value(k));
    layers_->setItem(i, LayerDelta, delta);
  }
  layers_->resizeColumnsToContents();
  if (keys.isEmpty()) {
    layers_->setRowCount(1);
    auto* none = new QTableWidgetItem(tr("(neither run has per-layer metrics)"));
    none->setFlags(Qt::ItemIsEnabled);
    layers_->setItem(0, Layer, none);
  }
}

}  // namespace mcw::ui
