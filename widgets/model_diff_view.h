// The Model Diff panel: the open model (A) against another model file (B), one row per
// tensor (relative L2, max |A−B|, cosine, changed share, zeros in A and B, type and size),
// sortable by every column, rows that differ tinted, a name filter and an "only
// differences" switch, and a summary line. It asks the context to compare and shows
// what the context reports; picking a row selects that tensor everywhere.
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

class QCheckBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QTableView;

namespace mcw::ui {

class ModelDiffFilter;
class ModelDiffTableModel;

class ModelDiffView : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit ModelDiffView(IProjectContext& context, QWidget* parent = nullptr);
  ~ModelDiffView() override;

  void onModelLoaded() override;
  void onModelDiffUpdated() override;
  void onJobUpdated(const JobProgress& job) override;
  void onSelectionChanged() override;

  // Asks for a model file (a dialog) and starts the comparison.
  void chooseAndCompare();

  QTableView* table() const { return table_; }
  QLineEdit* filterBox() const { return filter_; }
  QCheckBox* onlyDifferences() const { return only_diff_; }
  QLabel* summaryLabel() const { return summary_; }
  QPushButton* compareButton() const { return compare_; }
  QPushButton* cancelButton() const { return cancel_; }
  ModelDiffTableModel* tableModel() const { return model_; }
  int visibleRowCount() const;

 signals:
  // A comparison finished with rows to show (the main window raises the panel's dock).
  void resultShown();

 private:
  void updateHeader();

  IProjectContext& context_;
  ModelDiffTableModel* model_;
  ModelDiffFilter* proxy_;
  QLabel* title_;
  QLabel* summary_;
  QLabel* error_;
  QProgressBar* progress_;
  QPushButton* compare_;
  QPushButton* cancel_;
  QLineEdit* filter_;
  QCheckBox* only_diff_;
  QTableView* table_;
};

}  // namespace mcw::ui
