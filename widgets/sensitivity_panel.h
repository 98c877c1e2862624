// Sensitivity panel: the open model's layer × setting heatmap of KL divergence or of a
// cheaper proxy, the relative output error of the layer or its block (each layer
// compressed alone at each setting; the caption and legend name the measure), read from the project's run store when the model
// loads and filled in cell by cell while a scan runs. The Scan button asks the context
// to scan; a running scan is cancelled from the Jobs panel.
//
// What-if mode: click a cell to choose that setting for its layer (click it again to keep
// the layer), drag to paint a column of layers, or use the keys (arrows, Space, 1-9,
// Delete/K to keep); Undo/Redo (Ctrl+Z, Ctrl+Shift+Z) step through the edits. "Start from"
// loads a project recipe's assignment (a search's answer), the line under the buttons
// shows the prediction as it changes (and the trade-off plot its point), and "Run this"
// writes the assignment as a recipe, adds it to the project and runs it.
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

class QComboBox;
class QLabel;
class QPushButton;
class QScrollArea;

namespace mcw::ui {

class HeatmapView;

class SensitivityPanel : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit SensitivityPanel(IProjectContext& context, QWidget* parent = nullptr);
  ~SensitivityPanel() override;

  void onProjectLoaded() override;
  void onModelLoaded() override;
  void onSensitivityLoaded() override;
  void onSensitivityCell(int row, int col) override;
  void onJobUpdated(const JobProgress& job) override;
  void onAssignmentChanged() override;

  HeatmapView* heatmap() const { return heatmap_; }
  QPushButton* scanButton() const { return scan_; }
  QPushButton* latencyButton() const { return latency_; }
  QLabel* statusLabel() const { return status_; }
  QLabel* captionLabel() const { return caption_; }
  QPushButton* whatIfButton() const { return whatif_; }
  QComboBox* startFromBox() const { return start_from_; }
  QPushButton* runButton() const { return run_; }
  QLabel* predictionLabel() const { return prediction_; }
  bool canUndo() const { return !undo_.isEmpty(); }
  void undo();
  void redo();
  void keepAll();
  int runAssignmentAs(const QString& name);  // the job id, or 0 (Run this without a dialog)

 private:
  void updateScanButton();
  void updateWhatIfControls();
  void refreshStartFrom();
  void edit(const QList<int>& next);  // an edit that Undo takes back
  QList<int> current() const;
  void assignPressed(int row, int col);
  void assignDragged(int row, int col);

  IProjectContext& context_;
  HeatmapView* heatmap_;
  QScrollArea* scroll_;
  QLabel* status_;
  QLabel* caption_;
  QPushButton* scan_;
  QPushButton* latency_;
  QPushButton *whatif_, *keep_all_, *undo_button_, *redo_button_, *run_;
  QComboBox* start_from_;
  QLabel* prediction_;
  QList<QList<int>> undo_, redo_;
  bool drag_keeps_ = false;  // the drag under way keeps layers (it started on a chosen cell)
};

}  // namespace mcw::ui
