// The Model panel's table: one row per tensor of the context's model, statistics filled
// in as they arrive, and the scheme, bits per weight and sparsity of the layers a packed
// export beside the model compresses (empty for the others). Sorting uses Qt::UserRole (numbers, not their display strings).
#pragma once
#include <QAbstractTableModel>

#include "widgets/project_context_api.h"

namespace mcw::ui {

class TensorTableModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column {
    Name, Shape, DType, Scheme, BitsPerWeight, Sparsity, Params, Bytes, Macs,
    Min, Max, Mean, Std, Zeros, ColumnCount
  };

  explicit TensorTableModel(const IProjectContext& context, QObject* parent = nullptr);
  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  void reset();            // the model changed as a whole
  void statsChanged(int row);
  int statsReadyCount() const;

 private:
  const IProjectContext& context_;
};

}  // namespace mcw::ui
