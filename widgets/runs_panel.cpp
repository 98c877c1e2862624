#include "widgets/runs_panel.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSplitter>
#include <QTableView>
#include <QVBoxLayout>

#include "widgets/run_compare_view.h"
#include "widgets/run_table_model.h"

namespace mcw::ui {

RunsPanel::RunsPanel(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  model_ = new RunTableModel(this);
  proxy_ = new RunFilterProxy(this);
  proxy_->setSourceModel(model_);

  title_ = new QLabel(this);
  filter_ = new QLineEdit(this);
  filter_->setObjectName(QStringLiteral("runFilter"));
  filter_->setPlaceholderText(tr("Filter runs by recipe, status or id…"));
  filter_->setClearButtonEnabled(true);
  status_ = new QComboBox(this);
  status_->setObjectName(QStringLiteral("runStatusFilter"));
  status_->addItem(tr("All statuses"), QString());
  for (const char* s : {"done", "running", "failed", "cancelled", "interrupted"})
    status_->addItem(QString::fromLatin1(s), QString::fromLatin1(s));
  compare_ = new QPushButton(tr("Compare"), this);
  compare_->setObjectName(QStringLiteral("compareRuns"));
  compare_->setToolTip(tr("Select two runs (Ctrl+click) to see their metrics side by side"));

  table_ = new QTableView(this);
  table_->setObjectName(QStringLiteral("runsTable"));
  table_->setModel(proxy_);
  table_->setSortingEnabled(true);
  table_->sortByColumn(-1, Qt::AscendingOrder);  // newest first until the user sorts
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::ExtendedSelection);
  table_->setAlternatingRowColors(true);
  table_->setWordWrap(false);
  table_->verticalHeader()->hide();
  table_->verticalHeader()->setDefaultSectionSize(table_->fontMetrics().height() + 6);
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::Interactive);

  auto* bar = new QHBoxLayout;
  bar->addWidget(title_);
  bar->addWidget(filter_, 1);
  bar->addWidget(status_);
  bar->addWidget(compare_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(bar);
  // The table keeps its rows; a recovery curve, when the run has one, goes beside it.
  auto* split = new QSplitter(Qt::Horizontal, this);
  split->addWidget(table_);
  curve_ = new RecoveryCurveView(split);
  curve_->hide();
  split->addWidget(curve_);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 1);
  layout->addWidget(split, 1);

  connect(filter_, &QLineEdit::textChanged, proxy_, &RunFilterProxy::setText);
  connect(status_, &QComboBox::currentIndexChanged, this,
          [this] { proxy_->setStatus(status_->currentData().toString()); });
  connect(compare_, &QPushButton::clicked, this, [this] {
    const QList<qint64> ids = selectedRunIds();
    if (ids.size() == 2) compare(ids[0], ids[1]);
  });
  connect(table_->selectionModel(), &QItemSelectionModel::selectionChanged, this,
          &RunsPanel::updateButtons);
  connect(table_->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
          [this](const QModelIndex& current) {
            if (syncing_ || !current.isValid()) return;
            const qint64 id =
                proxy_->index(current.row(), 0).data(RunTableModel::RunIdRole).toLongLong();
            if (id == context_.selection().run_id) return;
            Selection s = context_.selection();
            s.run_id = id;
            context_.setSelection(s);
          });
  context_.addViewer(this);
  reload();
}

RunsPanel::~RunsPanel() { context_.removeViewer(this); }

void RunsPanel::onProjectLoaded() { reload(); }
void RunsPanel::onRunUpdated(qint64 id) {
  reload();
  if (id == curve_run_ || id < 0) curve_run_ = -1, showCurve(context_.selection().run_id);
}
void RunsPanel::onSelectionChanged() {
  selectRun(context_.selection().run_id);
  showCurve(context_.selection().run_id);
}

void RunsPanel::showCurve(qint64 id) {
  if (id == curve_run_) return;
  curve_run_ = id;
  const QList<CurvePointRow> points = id > 0 ? context_.runCurve(id) : QList<CurvePointRow>();
  const int row = model_->rowOfRun(id);
  const QString recipe = row >= 0 ? model_->runs()[row].recipe : QString();
  curve_->setCurve(points, tr("Recovery of run #%1 (%2)").arg(id).arg(recipe));
  curve_->setVisible(!curve_->isEmpty());
}

void RunsPanel::reload() {
  const int before = model_->rowCount();
  model_->setRuns(context_.runs());
  const int n = model_->rowCount();
  title_->setText(context_.hasProject() ? tr("%n run(s)", nullptr, n) : tr("No project"));
  // Fit the columns when runs come or go (it measures only the visible rows); a width
  // the user dragged lasts until then.
  if (n != before && n > 0) {
    table_->resizeColumnsToContents();
    for (int c = 0; c < RunTableModel::ColumnCount; ++c)
      table_->setColumnWidth(c, table_->columnWidth(c) + 8);
    table_->setColumnWidth(RunTableModel::Recipe,
                           std::max(table_->columnWidth(RunTableModel::Recipe), 140));
  }
  if (table_->selectionModel()->selectedRows().isEmpty()) selectRun(context_.selection().run_id);
  updateButtons();
}

void RunsPanel::selectRun(qint64 id) {
  const int source_row = model_->rowOfRun(id);
  QModelIndex current = table_->currentIndex();
  const qint64 shown = current.isValid() ? current.data(RunTableModel::RunIdRole).toLongLong() : -1;
  if (shown == id && (id < 0 || source_row >= 0)) return;
  syncing_ = true;
  if (source_row < 0) {
    table_->clearSelection();
  } else {
    const QModelIndex index = proxy_->mapFromSource(model_->index(source_row, 0));
    if (index.isValid()) {
      table_->selectionModel()->setCurrentIndex(
          index, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
      table_->scrollTo(index);
    }
  }
  syncing_ = false;
}

QList<qint64> RunsPanel::selectedRunIds() const {
  QList<qint64> ids;
  for (const QModelIndex& i : table_->selectionModel()->selectedRows())
    ids << i.data(RunTableModel::RunIdRole).toLongLong();
  std::sort(ids.begin(), ids.end());  // the older run is A
  return ids;
}

void RunsPanel::updateButtons() { compare_->setEnabled(selectedRunIds().size() == 2); }

void RunsPanel::compare(qint64 a, qint64 b) {
  const int ra = model_->rowOfRun(a), rb = model_->rowOfRun(b);
  if (ra < 0 || rb < 0) return;
  const RunRow run_a = model_->runs()[ra], run_b = model_->runs()[rb];
  auto* view = new RunCompareView(run_a, run_b, context_.runLayerMetrics(a),
                                  context_.runLayerMetrics(b), this);
  view->setAttribute(Qt::WA_DeleteOnClose);
  view->setWindowFlag(Qt::Window);
  compare_view_ = view;
  view->show();
}

}  // namespace mcw::ui
