// The Model panel's layer tree: the tensors grouped by the dotted parts of their names
// (model ▸ layers ▸ 3 ▸ self_attn ▸ q_proj.weight, or blk ▸ 3 ▸ attn_q.weight), each group
// with the totals of what it holds — parameters, bytes, MACs per token and, for a model
// with a packed export, the bits per weight and sparsity of its compressed layers.
#pragma once
#include <QAbstractItemModel>
#include <vector>

#include "widgets/project_context_api.h"

namespace mcw::ui {

class LayerTreeModel : public QAbstractItemModel {
  Q_OBJECT
 public:
  enum Column { Name, Shape, DType, Scheme, BitsPerWeight, Sparsity, Params, Bytes, Macs, ColumnCount };
  static constexpr int kPathRole = Qt::UserRole + 1;  // the full dotted name of a row

  explicit LayerTreeModel(const IProjectContext& context, QObject* parent = nullptr);

  QModelIndex index(int row, int column, const QModelIndex& parent = {}) const override;
  QModelIndex parent(const QModelIndex& child) const override;
  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation o, int role) const override;

  void reset();  // rebuilds the tree from the context's model
  // The index (column 0) of a tensor's leaf, invalid when there is none.
  QModelIndex indexOfTensor(const QString& name) const;
  // The tensor row (ModelSummary::tensors) behind an index, -1 for a group.
  int tensorRow(const QModelIndex& index) const;

 private:
  struct Node {
    QString label, path;
    int parent = -1, row = 0;  // row among the parent's children
    int tensor = -1;           // index into ModelSummary::tensors, -1 for a group
    std::vector<int> children;
    quint64 params = 0, bytes = 0, macs = 0;
    // Over the compressed (packed) tensors below: their weights and stored bits.
    quint64 packed_weights = 0, packed_kept = 0;
    double packed_bits = 0;
    int tensors = 0;
  };
  int nodeOf(const QModelIndex& index) const;
  int child(int parent, const QString& label, const QString& path);

  const IProjectContext& context_;
  std::vector<Node> nodes_;  // nodes_[0] is the invisible root
};

}  // namespace mcw::ui
