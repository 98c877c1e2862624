// Sensitivity panel: the open model's layer × setting heatmap of KL divergence or of a
// cheaper proxy, the relative output error of the layer or its block (each layer
// compressed alone at each setting; the caption and legend name the measure), read from the project's run store when the model
// loads and filled in cell by cell while a scan runs. The Scan button asks the context
// to scan; a running scan is cancelled from the Jobs panel.
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

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

  HeatmapView* heatmap() const { return heatmap_; }
  QPushButton* scanButton() const { return scan_; }
  QLabel* statusLabel() const { return status_; }
  QLabel* captionLabel() const { return caption_; }

 private:
  void updateScanButton();

  IProjectContext& context_;
  HeatmapView* heatmap_;
  QScrollArea* scroll_;
  QLabel* status_;
  QLabel* caption_;
  QPushButton* scan_;
};

}  // namespace mcw::ui
