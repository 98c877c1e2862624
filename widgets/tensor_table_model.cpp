#include "widgets/tensor_table_model.h"

#include <QBrush>
#include <QColor>
#include <iterator>

namespace mcw::ui {

TensorTableModel::TensorTableModel(const IProjectContext& context, QObject* parent)
    : QAbstractTableModel(parent), context_(context) {}

int TensorTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(context_.model().tensors.size());
}

int TensorTableModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : ColumnCount;
}

static QString number_text(double v) { return QString::number(v, 'g', 4); }

QVariant TensorTableModel::data(const QModelIndex& index, int role) const {
  const auto& rows = context_.model().tensors;
  if (!index.isValid() || index.row() >= rows.size()) return {};
  const TensorRow& r = rows[index.row()];
  const TensorStatsRow& s = r.stats;
  const auto& packed = context_.model().packed;
  const PackedLayerRow* p = r.packed >= 0 && r.packed < packed.size() ? &packed[r.packed] : nullptr;
  const int c = index.column();
  const bool stat_column = c >= Min;
  if (role == Qt::TextAlignmentRole)
    return c <= DType || c == Scheme ? QVariant(Qt::AlignLeft | Qt::AlignVCenter)
                                     : QVariant(Qt::AlignRight | Qt::AlignVCenter);
  if (role == Qt::ToolTipRole && p && c >= Scheme && c <= Sparsity)
    return tr("%1 bytes stored (packed) for %2 weights").arg(p->storage_bytes).arg(r.params);
  if (role == Qt::ForegroundRole && stat_column && !s.ready) return QBrush(QColor(128, 128, 128));
  if (role == Qt::ToolTipRole && c == Zeros && s.ready && s.nonfinite)
    return tr("%1 values are NaN or infinite").arg(s.nonfinite);
  if (role == Qt::DisplayRole) {
    if (stat_column && !s.ready) return QStringLiteral("…");
    switch (c) {
      case Name: return r.name;
      case Shape: return format_shape(r.shape);
      case DType: return r.dtype;
      case Params: return format_count(r.params);
      case Bytes: return format_bytes(r.bytes);
      case Macs: return r.macs_per_token ? format_count(r.macs_per_token) : QStringLiteral("–");
      case Scheme: return p ? p->scheme : QString();
      case BitsPerWeight: return p ? QString::number(p->bits_per_weight, 'f', 2) : QString();
      case Sparsity:
        return p ? QString::number(100.0 * (1.0 - p->kept_fraction), 'f', 1) + QStringLiteral(" %")
                 : QString();
      case Min: return number_text(s.min);
      case Max: return number_text(s.max);
      case Mean: return number_text(s.mean);
      case Std: return number_text(s.std);
      case Zeros: return QString::number(s.zeros);
    }
  }
  if (role == Qt::UserRole) {  // sort key
    switch (c) {
      case Name: return r.name;
      case Shape: return format_shape(r.shape);
      case DType: return r.dtype;
      case Params: return r.params;
      case Bytes: return r.bytes;
      case Macs: return r.macs_per_token;
      case Scheme: return p ? p->scheme : QString();
      case BitsPerWeight: return p ? p->bits_per_weight : -1.0;
      case Sparsity: return p ? 1.0 - p->kept_fraction : -1.0;
      case Min: return s.ready ? s.min : 0.0;
      case Max: return s.ready ? s.max : 0.0;
      case Mean: return s.ready ? s.mean : 0.0;
      case Std: return s.ready ? s.std : 0.0;
      case Zeros: return s.zeros;
    }
  }
  return {};
}

QVariant TensorTableModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  static const char* names[] = {"Tensor",     "Shape", "Type",  "Scheme", "Bits/w",
                                "Sparsity",   "Parameters", "Bytes", "MACs/token",
                                "Min",        "Max",   "Mean",  "Std",    "Zeros"};
  static_assert(std::size(names) == ColumnCount);
  return tr(names[section]);
}

void TensorTableModel::reset() {
  beginResetModel();
  endResetModel();
}

void TensorTableModel::statsChanged(int row) {
  emit dataChanged(index(row, Min), index(row, Zeros));
}

int TensorTableModel::statsReadyCount() const {
  int n = 0;
  for (const TensorRow& r : context_.model().tensors) n += r.stats.ready;
  return n;
}

}  // namespace mcw::ui
