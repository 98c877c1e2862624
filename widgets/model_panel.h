// Model panel: the open model's tensors (shape, type, parameters, bytes, MACs per token,
// value statistics that fill in from a background job), with a filter box and sorting.
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

class QLabel;
class QLineEdit;
class QSortFilterProxyModel;
class QTableView;

namespace mcw::ui {

class TensorTableModel;

class ModelPanel : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit ModelPanel(IProjectContext& context, QWidget* parent = nullptr);
  ~ModelPanel() override;

  void onModelLoaded() override;
  void onTensorStatsUpdated(int row) override;
  void onSelectionChanged() override;

  QTableView* table() const { return table_; }
  QLineEdit* filterBox() const { return filter_; }
  int visibleRowCount() const;

 private:
  void updateHeader();

  IProjectContext& context_;
  TensorTableModel* model_;
  QSortFilterProxyModel* proxy_;
  QLabel* title_;
  QLabel* error_;
  QLineEdit* filter_;
  QTableView* table_;
};

}  // namespace mcw::ui
