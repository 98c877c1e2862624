// Runs panel: every run of the open project in a sortable table (metrics as columns), a
// text filter and a status filter. The current row is the selected run (Selection.run_id,
// which the trade-off plot also shows); Compare opens two selected runs side by side. A
// run that recorded a curve (recovery fine-tuning) shows it under the table.
#pragma once
#include <QPointer>
#include <QWidget>

#include "widgets/project_context_api.h"
#include "widgets/recovery_curve_view.h"
#include "widgets/run_compare_view.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QTableView;

namespace mcw::ui {

class RunFilterProxy;
class RunTableModel;

class RunsPanel : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit RunsPanel(IProjectContext& context, QWidget* parent = nullptr);
  ~RunsPanel() override;

  void onProjectLoaded() override;
  void onRunUpdated(qint64 run_id) override;
  void onSelectionChanged() override;

  QTableView* table() const { return table_; }
  RunTableModel* runModel() const { return model_; }
  RunFilterProxy* proxy() const { return proxy_; }
  QLineEdit* filterBox() const { return filter_; }
  QComboBox* statusBox() const { return status_; }
  QPushButton* compareButton() const { return compare_; }
  RunCompareView* compareView() const { return compare_view_; }  // the last one opened
  RecoveryCurveView* curveView() const { return curve_; }
  QList<qint64> selectedRunIds() const;
  // Opens the comparison of two runs (what Compare does with two selected rows).
  void compare(qint64 a, qint64 b);

 private:
  void reload();
  void selectRun(qint64 id);
  void updateButtons();
  void showCurve(qint64 id);

  IProjectContext& context_;
  RunTableModel* model_;
  RunFilterProxy* proxy_;
  QLabel* title_;
  QLineEdit* filter_;
  QComboBox* status_;
  QPushButton* compare_;
  QTableView* table_;
  QPointer<RunCompareView> compare_view_;
  RecoveryCurveView* curve_;
  qint64 curve_run_ = -1;
  bool syncing_ = false;  // while the table follows the context's selection
};

}  // namespace mcw::ui
