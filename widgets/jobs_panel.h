// Jobs & Log panel: one row per background job (name, stage, progress bar, ETA, state,
// Cancel) above the log of messages.
#pragma once
#include <QMap>
#include <QWidget>

#include "widgets/project_context_api.h"

class QPlainTextEdit;
class QTableWidget;

namespace mcw::ui {

class JobsPanel : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  enum Column { Name, Stage, Progress, Eta, State, Cancel, ColumnCount };

  explicit JobsPanel(IProjectContext& context, QWidget* parent = nullptr);
  ~JobsPanel() override;

  void onJobUpdated(const JobProgress& job) override;
  void onLogMessage(const QString& line) override;

  QTableWidget* table() const { return table_; }
  QPlainTextEdit* logView() const { return log_; }
  int rowOf(int job_id) const { return rows_.value(job_id, -1); }

 private:
  void addRow(const JobProgress& job);

  IProjectContext& context_;
  QTableWidget* table_;
  QPlainTextEdit* log_;
  QMap<int, int> rows_;  // job id -> table row
};

}  // namespace mcw::ui
