#include "widgets/layer_tree_model.h"

#include <iterator>

namespace mcw::ui {

LayerTreeModel::LayerTreeModel(const IProjectContext& context, QObject* parent)
    : QAbstractItemModel(parent), context_(context) {
  reset();
}

int LayerTreeModel::child(int parent, const QString& label, const QString& path) {
  for (int c : nodes_[size_t(parent)].children)
    if (nodes_[size_t(c)].tensor < 0 && nodes_[size_t(c)].label == label) return c;
  Node n;
  n.label = label;
  n.path = path;
  n.parent = parent;
  n.row = int(nodes_[size_t(parent)].children.size());
  nodes_.push_back(n);
  const int id = int(nodes_.size()) - 1;
  nodes_[size_t(parent)].children.push_back(id);
  return id;
}

void LayerTreeModel::reset() {
  beginResetModel();
  nodes_.assign(1, Node{});
  const ModelSummary& m = context_.model();
  for (int t = 0; t < m.tensors.size(); ++t) {
    const TensorRow& r = m.tensors[t];
    QStringList parts = r.name.split(QLatin1Char('.'));
    // "q_proj.weight" stays one leaf: a parameter's kind is not a level of its own.
    int leaf_parts = 1;
    if (parts.size() >= 2 && (parts.back() == QLatin1String("weight") ||
                              parts.back() == QLatin1String("bias")))
      leaf_parts = 2;
    int at = 0;
    QString path;
    for (int i = 0; i + leaf_parts < parts.size(); ++i) {
      path += (i ? QStringLiteral(".") : QString()) + parts[i];
      at = child(at, parts[i], path);
    }
    Node leaf;
    leaf.label = parts.mid(parts.size() - leaf_parts).join(QLatin1Char('.'));
    leaf.path = r.name;
    leaf.parent = at;
    leaf.row = int(nodes_[size_t(at)].children.size());
    leaf.tensor = t;
    nodes_.push_back(leaf);
    const int id = int(nodes_.size()) - 1;
    nodes_[size_t(at)].children.push_back(id);
    // Totals up the chain, the leaf included.
    const PackedLayerRow* p =
        r.packed >= 0 && r.packed < m.packed.size() ? &m.packed[r.packed] : nullptr;
    for (int n = id; n >= 0; n = nodes_[size_t(n)].parent) {
      Node& x = nodes_[size_t(n)];
      x.params += r.params, x.bytes += r.bytes, x.macs += r.macs_per_token, x.tensors += 1;
      if (p) {
        const quint64 w = quint64(p->rows) * quint64(p->cols);
        x.packed_weights += w;
        x.packed_kept += quint64(p->kept_fraction * double(w) + 0.5);
        x.packed_bits += p->bits_per_weight * double(w);
      }
      if (n == 0) break;
    }
  }
  endResetModel();
}

int LayerTreeModel::nodeOf(const QModelIndex& index) const {
  return index.isValid() ? int(index.internalId()) : 0;
}

QModelIndex LayerTreeModel::index(int row, int column, const QModelIndex& parent) const {
  const int p = nodeOf(parent);
  if (p < 0 || size_t(p) >= nodes_.size() || row < 0 ||
      size_t(row) >= nodes_[size_t(p)].children.size() || column < 0 || column >= ColumnCount)
    return {};
  return createIndex(row, column, quintptr(nodes_[size_t(p)].children[size_t(row)]));
}

QModelIndex LayerTreeModel::parent(const QModelIndex& child) const {
  if (!child.isValid()) return {};
  const int p = nodes_[size_t(nodeOf(child))].parent;
  if (p <= 0) return {};
  return createIndex(nodes_[size_t(p)].row, 0, quintptr(p));
}

int LayerTreeModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid() && parent.column() != 0) return 0;
  return int(nodes_[size_t(nodeOf(parent))].children.size());
}

int LayerTreeModel::columnCount(const QModelIndex&) const { return ColumnCount; }

QVariant LayerTreeModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid()) return {};
  const Node& n = nodes_[size_t(nodeOf(index))];
  const ModelSummary& m = context_.model();
  const TensorRow* r = n.tensor >= 0 && n.tensor < m.tensors.size() ? &m.tensors[n.tensor] : nullptr;
  const PackedLayerRow* p =
      r && r->packed >= 0 && r->packed < m.packed.size() ? &m.packed[r->packed] : nullptr;
  const int c = index.column();
  const bool has_packed = n.packed_weights > 0;
  const double bits = has_packed ? n.packed_bits / double(n.packed_weights) : -1.0;
  const double sparsity = has_packed ? 1.0 - double(n.packed_kept) / double(n.packed_weights) : -1.0;
  if (role == kPathRole) return n.path;
  if (role == Qt::TextAlignmentRole)
    return c <= DType || c == Scheme ? QVariant(Qt::AlignLeft | Qt::AlignVCenter)
                                     : QVariant(Qt::AlignRight | Qt::AlignVCenter);
  if (role == Qt::ToolTipRole) {
    if (!r) return tr("%1: %2 tensors").arg(n.path).arg(n.tensors);
    if (p && c >= Scheme && c <= Sparsity)
      return tr("%1 bytes stored (packed) for %2 weights").arg(p->storage_bytes).arg(r->params);
    return {};
  }
  if (role == Qt::DisplayRole) {
    switch (c) {
      case Name: return n.label;
      case Shape: return r ? format_shape(r->shape) : tr("%1 tensors").arg(n.tensors);
      case DType: return r ? r->dtype : QString();
      case Scheme: return p ? p->scheme : QString();
      case BitsPerWeight: return has_packed ? QString::number(bits, 'f', 2) : QString();
      case Sparsity:
        return has_packed ? QString::number(100.0 * sparsity, 'f', 1) + QStringLiteral(" %") : QString();
      case Params: return format_count(n.params);
      case Bytes: return format_bytes(n.bytes);
      case Macs: return n.macs ? format_count(n.macs) : QStringLiteral("–");
    }
  }
  if (role == Qt::UserRole) {  // sort key
    switch (c) {
      case Name: return n.label;
      case Shape: return r ? format_shape(r->shape) : QString();
      case DType: return r ? r->dtype : QString();
      case Scheme: return p ? p->scheme : QString();
      case BitsPerWeight: return bits;
      case Sparsity: return sparsity;
      case Params: return n.params;
      case Bytes: return n.bytes;
      case Macs: return n.macs;
    }
  }
  return {};
}

QVariant LayerTreeModel::headerData(int section, Qt::Orientation o, int role) const {
  if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
  static const char* names[] = {"Layer",    "Shape",      "Type",  "Scheme",    "Bits/w",
                                "Sparsity", "Parameters", "Bytes", "MACs/token"};
  static_assert(std::size(names) == ColumnCount);
  return tr(names[section]);
}

QModelIndex LayerTreeModel::indexOfTensor(const QString& name) const {
  for (size_t i = 1; i < nodes_.size(); ++i)
    if (nodes_[i].tensor >= 0 && nodes_[i].path == name)
      return createIndex(nodes_[i].row, 0, quintptr(i));
  return {};
}

int LayerTreeModel::tensorRow(const QModelIndex& index) const {
  return index.isValid() ? nodes_[size_t(nodeOf(index))].tensor : -1;
}

}  // namespace mcw::ui
