// The quantisation parameters of one packed layer, one table row per (row, group): the
// scale and zero point of an affine layer, or the 2^bits centroids of a codebook layer.
// A 4096 x 32-group layer is 131k rows, so cells are read from the layer's lists on demand.
#pragma once
#include <QAbstractTableModel>

#include "widgets/packed_layer_types.h"

namespace mcw::ui {

class PackedParamsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { Row, Group, Scale, Zero };  // codebook: Row, Group, then centroid k at 2 + k

  explicit PackedParamsModel(QObject* parent = nullptr);
  // Copies the row (its lists are shared, not duplicated); a layer without group
  // parameters (dense, low rank) or none at all gives an empty table.
  void setLayer(const PackedLayerRow* layer);
  const PackedLayerRow& layer() const { return layer_; }

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

 private:
  bool isCodebook() const { return layer_.coding == QLatin1String("codebook"); }
  qint64 cells() const;

  PackedLayerRow layer_;
};

}  // namespace mcw::ui
