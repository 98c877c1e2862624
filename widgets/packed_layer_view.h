// Beneath the Model panel's table: the selected layer as the packed export stores it (its
// scheme, shape, bits per weight, bytes, kept fraction or N:M pattern, outliers, rank) and
// a table of its quantisation parameters per (row, group).
#pragma once
#include <QWidget>

#include "widgets/packed_layer_types.h"

class QLabel;
class QTableView;

namespace mcw::ui {

class PackedParamsModel;

class PackedLayerView : public QWidget {
  Q_OBJECT
 public:
  explicit PackedLayerView(QWidget* parent = nullptr);

  // `layer` null: `name` (maybe empty) is not compressed in the export.
  void showLayer(const QString& name, const PackedLayerRow* layer);

  QLabel* summary() const { return summary_; }
  QTableView* table() const { return table_; }
  PackedParamsModel* params() const { return params_; }

 private:
  QLabel* summary_;
  QTableView* table_;
  PackedParamsModel* params_;
};

// The summary's text, e.g. "int4 g32 sym · affine · 32 × 64 · 5.00 bits/weight · ...".
QString packed_layer_summary(const PackedLayerRow& layer);

}  // namespace mcw::ui
