#include "widgets/model_diff_table_model.h"

#include <QBrush>
#include <QColor>
#include <cmath>
#include <limits>

namespace mcw::ui {

static constexpr double kInf = std::numeric_limits<double>::infinity();

ModelDiffTableModel::ModelDiffTableModel(QObject* parent) : QAbstractTableModel(parent) {}

void ModelDiffTableModel::setRows(QList<TensorDiffRow> rows) {
  beginResetModel();
  rows_ = std::move(rows);
  endResetModel();
}

int ModelDiffTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(rows_.size());
}

int ModelDiffTableModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : ColumnCount;
}

static QString a_to_b(const QString& a, const QString& b) {
  if (a.isEmpty()) return b;
  if (b.isEmpty() || a == b) return a;
  return a + QStringLiteral(" → ") + b;
}

static QString percent(double share) { return QStringLiteral("%1 %").arg(100 * share, 0, 'f', 1); }

static QString small_number(double v) {
  if (std::isinf(v)) return QStringLiteral("∞");
  if (v == 0) return QStringLiteral("0");
  return QString::number(v, 'g', 3);
}

QString ModelDiffTableModel::cellText(const TensorDiffRow& r, int column) {
  const bool compared = r.status == TensorDiffStatus::Compared;
  switch (column) {
    case Name:
      return r.name;
    case Status:
      return tensor_diff_status_name(r.status);
    case Shape:
      return a_to_b(r.shape_a.isEmpty() && r.dtype_a.isEmpty() ? QString() : format_shape(r.shape_a),
                    r.shape_b.isEmpty() && r.dtype_b.isEmpty() ? QString() : format_shape(r.shape_b));
    case DType:
      return a_to_b(r.dtype_a, r.dtype_b);
    case Size:
      return a_to_b(r.dtype_a.isEmpty() ? QString() : format_bytes(r.bytes_a),
                    r.dtype_b.isEmpty() ? QString() : format_bytes(r.bytes_b));
    default:
      break;
  }
  if (!compared) return QStringLiteral("–");
  switch (column) {
    case RelL2:
      return small_number(r.rel_l2);
    case MaxAbs:
      return small_number(r.max_abs);
    case Cosine:
      return QString::number(r.cosine, 'f', 6);
    case Changed:
      return percent(r.changed_fraction);
    case SparsityA:
      return percent(r.sparsity_a);
    case SparsityB:
      return percent(r.sparsity_b);
  }
  return {};
}

// Rows that were not compared sort as the most different: above every number when the
// column is sorted by "more different first".
QVariant ModelDiffTableModel::sortKey(const TensorDiffRow& r, int column) {
  const bool compared = r.status == TensorDiffStatus::Compared;
  switch (column) {
    case Name:
      return r.name;
    case Status:
      return int(r.status);
    case Shape:
      return cellText(r, Shape);
    case DType:
      return cellText(r, DType);
    case RelL2:
      return compared ? r.rel_l2 : kInf;
    case MaxAbs:
      return compared ? r.max_abs : kInf;
    case Cosine:
      return compared ? r.cosine : -kInf;
    case Changed:
      return compared ? r.changed_fraction : kInf;
    case SparsityA:
      return compared ? r.sparsity_a : -kInf;
    case SparsityB:
      return compared ? r.sparsity_b : -kInf;
    case Size:
      return double(r.bytes_b) - double(r.bytes_a);  // what B saves is negative
  }
  return {};
}

QVariant ModelDiffTableModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rows_.size()) return {};
  const TensorDiffRow& r = rows_[index.row()];
  const int c = index.column();
  switch (role) {
    case Qt::DisplayRole:
      return cellText(r, c);
    case Qt::UserRole:
      return sortKey(r, c);
    case Qt::TextAlignmentRole:
      return c >= RelL2 ? QVariant(Qt::AlignRight | Qt::AlignVCenter)
                        : QVariant(Qt::AlignLeft | Qt::AlignVCenter);
    case Qt::BackgroundRole:
      // Translucent tints read on the light and the dark theme alike.
      if (r.status != TensorDiffStatus::Compared) return QBrush(QColor(224, 80, 74, 70));
      if (r.differs) return QBrush(QColor(240, 170, 40, 60));
      return {};
    case Qt::ToolTipRole:
      if (c == RelL2 && std::isinf(r.rel_l2)) return tr("A is all zeros, B is not");
      if (c == Size && r.dtype_a.size() && r.dtype_b.size())
        return tr("%1 → %2 bytes").arg(r.bytes_a).arg(r.bytes_b);
      return {};
  }
  return {};
}

QVariant ModelDiffTableModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || section < 0 || section >= ColumnCount) return {};
  if (role == Qt::DisplayRole) {
    static const char* names[] = {"Tensor",  "Status",    "Shape",     "Type A → B",
                                  "Rel. L2", "Max |A−B|", "Cosine",    "Changed",
                                  "Zeros A", "Zeros B",   "Size A → B"};
    return tr(names[section]);
  }
  if (role == Qt::ToolTipRole) {
    switch (section) {
      case RelL2:
        return tr("‖A − B‖ / ‖A‖ over the dequantised values");
      case MaxAbs:
        return tr("The largest absolute difference of one element");
      case Cosine:
        return tr("A·B / (‖A‖ ‖B‖): 1 = same direction");
      case Changed:
        return tr("Share of elements whose value differs");
      case SparsityA:
      case SparsityB:
        return tr("Share of elements that are exactly zero (sparsity)");
      case Size:
        return tr("Stored bytes; sorts by the change B − A");
    }
  }
  return {};
}

ModelDiffFilter::ModelDiffFilter(QObject* parent) : QSortFilterProxyModel(parent) {
  setSortRole(Qt::UserRole);
}

void ModelDiffFilter::setNameFilter(const QString& text) {
  name_ = text;
  invalidateFilter();
}

void ModelDiffFilter::setOnlyDifferences(bool only) {
  only_differences_ = only;
  invalidateFilter();
}

bool ModelDiffFilter::filterAcceptsRow(int source_row, const QModelIndex&) const {
  const auto* m = qobject_cast<const ModelDiffTableModel*>(sourceModel());
  if (!m || source_row >= m->rows().size()) return false;
  const TensorDiffRow& r = m->rows()[source_row];
  if (only_differences_ && !r.differs) return false;
  return name_.isEmpty() || r.name.contains(name_, Qt::CaseInsensitive);
}

}  // namespace mcw::ui
