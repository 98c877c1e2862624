// Model panel: the open model's tensors (shape, type, parameters, bytes, MACs per token,
// value statistics that fill in from a background job), with a filter box and sorting.
// When a packed export lies beside the model, its scheme, bits per weight and sparsity
// join the table, and the selected layer's packed form shows beneath it.
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

class QLabel;
class QLineEdit;
class QSortFilterProxyModel;
class QSplitter;
class QTableView;
class QTreeView;
class QCheckBox;
class QStackedWidget;

namespace mcw::ui {

class PackedLayerView;
class TensorTableModel;
class LayerTreeModel;

class ModelPanel : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit ModelPanel(IProjectContext& context, QWidget* parent = nullptr);
  ~ModelPanel() override;

  void onModelLoaded() override;
  void onTensorStatsUpdated(int row) override;
  void onPackedParametersLoaded(int index) override;
  void onSelectionChanged() override;

  QTableView* table() const { return table_; }
  QTreeView* tree() const { return tree_; }
  // The layer tree (default) or the flat table with value statistics.
  void setTreeShown(bool tree);
  bool treeShown() const;
  QLineEdit* filterBox() const { return filter_; }
  PackedLayerView* packedView() const { return packed_view_; }
  int visibleRowCount() const;

 private:
  void updateHeader();
  void updatePackedView();
  void selectInTree(const QString& layer);

  IProjectContext& context_;
  TensorTableModel* model_;
  QSortFilterProxyModel* proxy_;
  QLabel* title_;
  QLabel* error_;
  QLineEdit* filter_;
  QTableView* table_;
  LayerTreeModel* tree_model_;
  QSortFilterProxyModel* tree_proxy_;
  QTreeView* tree_;
  QCheckBox* tree_toggle_;
  QStackedWidget* views_;
  QSplitter* splitter_;
  PackedLayerView* packed_view_;
};

}  // namespace mcw::ui
