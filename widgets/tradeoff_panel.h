// Trade-off panel: accuracy against cost for every finished run of the project, the
// axes chosen in two combo boxes (y: perplexity, KL, top-1; x: latency, size, bits per
// weight), with the Pareto front of those two metrics from the context. Clicking a run
// selects it (Selection.run_id); the selected run is ringed wherever it was selected. A
// run that recorded a prediction (mcw predict --add) also shows where it was predicted to
// land on the chosen axes, and the Sensitivity panel's what-if assignment its predicted
// point (when both axes are predicted).
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

class QComboBox;
class QLabel;

namespace mcw::ui {

class TradeoffPlot;

class TradeoffPanel : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit TradeoffPanel(IProjectContext& context, QWidget* parent = nullptr);
  ~TradeoffPanel() override;

  void onProjectLoaded() override;
  void onRunUpdated(qint64 run_id) override;
  void onSelectionChanged() override;
  void onAssignmentChanged() override;

  TradeoffPlot* plot() const { return plot_; }
  QComboBox* xAxisBox() const { return x_box_; }
  QComboBox* yAxisBox() const { return y_box_; }
  int pointCount() const;
  QString xMetric() const;
  QString yMetric() const;
  QLabel* whatIfNote() const { return whatif_note_; }  // why the what-if point is not drawn

 private:
  void rebuild();
  void pickAxesWithData();
  void updateWhatIf();

  IProjectContext& context_;
  QComboBox* y_box_;
  QComboBox* x_box_;
  QLabel* summary_;
  QLabel* whatif_note_;
  TradeoffPlot* plot_;
};

}  // namespace mcw::ui
