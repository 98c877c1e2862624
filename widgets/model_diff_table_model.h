// The rows of a model diff as a table: one per tensor, numbers in Qt::UserRole for
// sorting (structural differences sort as the most different), rows that differ tinted.
// ModelDiffFilter hides rows by name and, optionally, those without any difference.
#pragma once
#include <QAbstractTableModel>
#include <QSortFilterProxyModel>

#include "widgets/bridge_types.h"
#include "widgets/model_diff_types.h"

namespace mcw::ui {

class ModelDiffTableModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column {
    Name,
    Status,
    Shape,
    DType,
    RelL2,
    MaxAbs,
    Cosine,
    Changed,
    SparsityA,
    SparsityB,
    Size,
    ColumnCount
  };

  explicit ModelDiffTableModel(QObject* parent = nullptr);

  void setRows(QList<TensorDiffRow> rows);
  const QList<TensorDiffRow>& rows() const { return rows_; }

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation o, int role = Qt::DisplayRole) const override;

  // The text a cell shows and the key it sorts by (exposed for tests).
  static QString cellText(const TensorDiffRow& r, int column);
  static QVariant sortKey(const TensorDiffRow& r, int column);

 private:
  QList<TensorDiffRow> rows_;
};

class ModelDiffFilter : public QSortFilterProxyModel {
  Q_OBJECT
 public:
  explicit ModelDiffFilter(QObject* parent = nullptr);
  void setNameFilter(const QString& text);
  void setOnlyDifferences(bool only);

 protected:
  bool filterAcceptsRow(int source_row, const QModelIndex& source_parent) const override;

 private:
  QString name_;
  bool only_differences_ = false;
};

}  // namespace mcw::ui
