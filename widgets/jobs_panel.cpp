#include "widgets/jobs_panel.h"

#include <QHeaderView>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

namespace mcw::ui {

JobsPanel::JobsPanel(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  table_ = new QTableWidget(0, ColumnCount, this);
  table_->setObjectName(QStringLiteral("jobsTable"));
  table_->setHorizontalHeaderLabels(
      {tr("Job"), tr("Stage"), tr("Progress"), tr("ETA"), tr("State"), QString()});
  table_->verticalHeader()->hide();
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->setSelectionMode(QAbstractItemView::NoSelection);
  table_->horizontalHeader()->setSectionResizeMode(Progress, QHeaderView::Stretch);
  log_ = new QPlainTextEdit(this);
  log_->setObjectName(QStringLiteral("logView"));
  log_->setReadOnly(true);
  log_->setMaximumBlockCount(5000);
  log_->setFont(QFont(QStringLiteral("monospace")));

  auto* split = new QSplitter(Qt::Horizontal, this);
  split->addWidget(table_);
  split->addWidget(log_);
  split->setStretchFactor(0, 1);
  split->setStretchFactor(1, 1);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(split);

  for (const QString& line : context_.logLines()) log_->appendPlainText(line);
  for (const JobProgress& j : context_.jobs()) onJobUpdated(j);
  context_.addViewer(this);
}

JobsPanel::~JobsPanel() { context_.removeViewer(this); }

void JobsPanel::addRow(const JobProgress& job) {
  const int row = table_->rowCount();
  table_->insertRow(row);
  rows_[job.id] = row;
  table_->setItem(row, Name, new QTableWidgetItem(job.name));
  table_->setItem(row, Stage, new QTableWidgetItem);
  table_->setItem(row, Eta, new QTableWidgetItem);
  table_->setItem(row, State, new QTableWidgetItem);
  auto* bar = new QProgressBar(table_);
  bar->setRange(0, 1000);
  bar->setTextVisible(true);
  table_->setCellWidget(row, Progress, bar);
  auto* cancel = new QPushButton(tr("Cancel"), table_);
  cancel->setObjectName(QStringLiteral("cancelJob%1").arg(job.id));
  const int id = job.id;
  connect(cancel, &QPushButton::clicked, this, [this, id] { context_.cancelJob(id); });
  table_->setCellWidget(row, Cancel, cancel);
}

void JobsPanel::onJobUpdated(const JobProgress& job) {
  if (!rows_.contains(job.id)) addRow(job);
  const int row = rows_[job.id];
  const bool running = job.state == JobState::Running;
  table_->item(row, Stage)->setText(running ? job.stage : QString());
  table_->item(row, Stage)->setToolTip(job.message);
  table_->item(row, Eta)->setText(running ? format_seconds(job.eta_seconds) : QString());
  table_->item(row, State)->setText(job_state_name(job.state));
  table_->item(row, State)->setToolTip(job.message);
  if (job.state == JobState::Failed) table_->item(row, State)->setForeground(QColor(224, 80, 74));
  auto* bar = static_cast<QProgressBar*>(table_->cellWidget(row, Progress));
  const bool done = job.state == JobState::Succeeded;
  bar->setValue(int((done ? 1.0 : job.fraction) * 1000));
  bar->setFormat(running ? QStringLiteral("%p%") : job_state_name(job.state));
  table_->cellWidget(row, Cancel)->setEnabled(running);
  table_->resizeColumnToContents(Name);
  table_->scrollToItem(table_->item(row, Name));
}

void JobsPanel::onLogMessage(const QString& line) { log_->appendPlainText(line); }

}  // namespace mcw::ui
