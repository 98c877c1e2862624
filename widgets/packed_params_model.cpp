#include "widgets/packed_params_model.h"

#include <QBrush>
#include <QColor>
#include <algorithm>
#include <limits>

namespace mcw::ui {

PackedParamsModel::PackedParamsModel(QObject* parent) : QAbstractTableModel(parent) {}

void PackedParamsModel::setLayer(const PackedLayerRow* layer) {
  beginResetModel();
  layer_ = layer ? *layer : PackedLayerRow{};
  endResetModel();
}

qint64 PackedParamsModel::cells() const {
  if (!layer_.hasGroupParameters()) return 0;
  // The lists were checked against rows*groups when read; take the smaller regardless.
  const qint64 n = layer_.rows * layer_.groups;
  const qint64 have = isCodebook() ? (layer_.bits > 0 ? layer_.codebook.size() >> layer_.bits : 0)
                                   : layer_.scales.size();
  return std::min({n, have, qint64(std::numeric_limits<int>::max())});
}

int PackedParamsModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(cells());
}

int PackedParamsModel::columnCount(const QModelIndex& parent) const {
  if (parent.isValid() || !layer_.hasGroupParameters()) return 0;
  return isCodebook() ? 2 + (1 << layer_.bits) : 4;
}

QVariant PackedParamsModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= cells()) return {};
  const qint64 i = index.row();
  const int c = index.column();
  if (role == Qt::TextAlignmentRole) return QVariant(Qt::AlignRight | Qt::AlignVCenter);
  const bool implied_zero = !isCodebook() && c == Zero && layer_.symmetric;
  if (role == Qt::ForegroundRole && implied_zero) return QBrush(QColor(128, 128, 128));
  if (role == Qt::ToolTipRole && implied_zero)
    return tr("Symmetric: the zero point is 2^(bits-1) and is not stored");
  if (role != Qt::DisplayRole && role != Qt::UserRole) return {};
  const bool display = role == Qt::DisplayRole;
  const auto number = [display](double v) -> QVariant {
    return display ? QVariant(QString::number(v, 'g', 6)) : QVariant(v);
  };
  if (c == Row) return i / layer_.groups;
  if (c == Group) return i % layer_.groups;
  if (isCodebook()) return number(layer_.codebook[qsizetype((i << layer_.bits) + (c - 2))]);
  if (c == Scale) return number(layer_.scales[qsizetype(i)]);
  if (layer_.symmetric) return number(double(1 << (layer_.bits - 1)));
  return i < layer_.zeros.size() ? number(layer_.zeros[qsizetype(i)]) : QVariant();
}

QVariant PackedParamsModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  switch (section) {
    case Row:
      return tr("Row");
    case Group:
      return tr("Group");
  }
  if (isCodebook()) return tr("c%1").arg(section - 2);
  return section == Scale ? tr("Scale") : tr("Zero point");
}

}  // namespace mcw::ui
