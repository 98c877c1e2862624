#include "widgets/packed_layer_view.h"

#include <QHeaderView>
#include <QLabel>
#include <QTableView>
#include <QVBoxLayout>

#include "widgets/bridge_types.h"
#include "widgets/packed_params_model.h"

namespace mcw::ui {

QString packed_layer_summary(const PackedLayerRow& l) {
  const QString dot = QStringLiteral("  ·  ");
  QStringList first{
      l.scheme, QStringLiteral("%1 × %2").arg(l.rows).arg(l.cols),
      QObject::tr("%1 bits/weight").arg(l.bits_per_weight, 0, 'f', 3),
      QObject::tr("%1 stored (%2 bytes)").arg(format_bytes(l.storage_bytes)).arg(l.storage_bytes)};
  QStringList second;
  const bool checkpoint = l.coding.endsWith(QLatin1String("checkpoint"));  // quantised files
  if (checkpoint && l.bits == 0) {  // the scheme above says it all
    second << QObject::tr("scales and zeros read from the file as needed");
  } else if (l.hasGroupParameters() || checkpoint) {
    QString g = QObject::tr("%1-bit %2, %3 group(s) of %4 per row")
                    .arg(l.bits)
                    .arg(l.coding)
                    .arg(l.groups)
                    .arg(l.group_size);
    if (l.act_order) g += QObject::tr(", act-order (g_idx)");
    if (l.coding == QLatin1String("affine") || checkpoint)
      g += l.symmetric ? QObject::tr(", symmetric") : QObject::tr(", asymmetric");
    second << g;
    if (checkpoint) second << QObject::tr("scales and zeros read from the file as needed");
  } else if (l.coding == QLatin1String("low_rank")) {
    second << QObject::tr("low rank %1: A %2 × %1, B %1 × %3").arg(l.rank).arg(l.rows).arg(l.cols);
  } else {
    second << QObject::tr("dense f16 values");
  }
  if (l.nm_m > 0) second << QObject::tr("%1:%2 pattern").arg(l.nm_n).arg(l.nm_m);
  second << QObject::tr("kept %1 %").arg(100.0 * l.kept_fraction, 0, 'f', 1);
  second << QObject::tr("%n outlier(s)", nullptr, int(l.outliers));
  QString text = l.name + QLatin1Char('\n') + first.join(dot) + QLatin1Char('\n') + second.join(dot);
  if (l.input_scales > 0)
    text += QLatin1Char('\n') +
            QObject::tr("input divided by a per-column scale s (AWQ): %1 values in [%2, %3]; "
                        "the parameters below code W·diag(s)")
                .arg(l.input_scales)
                .arg(double(l.input_scale_min), 0, 'g', 4)
                .arg(double(l.input_scale_max), 0, 'g', 4);
  return text;
}

PackedLayerView::PackedLayerView(QWidget* parent) : QWidget(parent) {
  summary_ = new QLabel(this);
  summary_->setObjectName(QStringLiteral("packedSummary"));
  summary_->setTextFormat(Qt::PlainText);
  summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  summary_->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Maximum);
  params_ = new PackedParamsModel(this);
  table_ = new QTableView(this);
  table_->setObjectName(QStringLiteral("packedParams"));
  table_->setModel(params_);
  table_->setAlternatingRowColors(true);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->verticalHeader()->hide();
  // Fixed row heights keep a 131k-row table from measuring every row.
  table_->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
  table_->verticalHeader()->setDefaultSectionSize(table_->fontMetrics().height() + 6);
  table_->horizontalHeader()->setStretchLastSection(true);

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(summary_);
  layout->addWidget(table_, 1);
  layout->addStretch(0);  // keeps the summary at the top while the table is hidden
  showLayer({}, nullptr);
}

void PackedLayerView::showLayer(const QString& name, const PackedLayerRow* layer) {
  params_->setLayer(layer);
  if (layer) {
    summary_->setText(packed_layer_summary(*layer));
  } else if (name.isEmpty()) {
    summary_->setText(tr("Select a tensor to see how the packed export stores it."));
  } else {
    summary_->setText(tr("%1\nnot compressed: stored as in the model").arg(name));
  }
  if (layer && layer->hasGroupParameters() && !layer->parameters_loaded)
    summary_->setText(summary_->text() + tr("\nreading its scales and zero points from the file…"));
  table_->setVisible(layer && layer->hasGroupParameters() && layer->parameters_loaded);
}

}  // namespace mcw::ui
