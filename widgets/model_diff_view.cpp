#include "widgets/model_diff_view.h"

#include <QCheckBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QTableView>
#include <QVBoxLayout>

#include "widgets/model_diff_table_model.h"

namespace mcw::ui {

ModelDiffView::ModelDiffView(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  model_ = new ModelDiffTableModel(this);
  proxy_ = new ModelDiffFilter(this);
  proxy_->setSourceModel(model_);

  title_ = new QLabel(this);
  title_->setObjectName(QStringLiteral("diffTitle"));
  title_->setTextFormat(Qt::PlainText);
  summary_ = new QLabel(this);
  summary_->setObjectName(QStringLiteral("diffSummary"));
  summary_->setTextFormat(Qt::PlainText);
  summary_->setWordWrap(true);
  error_ = new QLabel(this);
  error_->setObjectName(QStringLiteral("diffError"));
  error_->setStyleSheet(QStringLiteral("color: #e0504a;"));
  error_->setWordWrap(true);
  error_->hide();
  progress_ = new QProgressBar(this);
  progress_->setRange(0, 1000);
  progress_->setTextVisible(false);
  progress_->setMaximumWidth(160);
  progress_->hide();
  compare_ = new QPushButton(tr("Compare with Model…"), this);
  compare_->setObjectName(QStringLiteral("compareModelButton"));
  compare_->setToolTip(
      tr("Compare the open model tensor by tensor with another model file "
         "(e.g. its compressed copy)"));
  cancel_ = new QPushButton(tr("Cancel"), this);
  cancel_->setObjectName(QStringLiteral("cancelDiffButton"));
  cancel_->hide();
  filter_ = new QLineEdit(this);
  filter_->setObjectName(QStringLiteral("diffFilter"));
  filter_->setPlaceholderText(tr("Filter tensors by name…"));
  filter_->setClearButtonEnabled(true);
  only_diff_ = new QCheckBox(tr("Only differences"), this);
  only_diff_->setObjectName(QStringLiteral("diffOnlyDifferences"));

  table_ = new QTableView(this);
  table_->setObjectName(QStringLiteral("diffTable"));
  table_->setModel(proxy_);
  table_->setSortingEnabled(true);
  table_->sortByColumn(-1, Qt::AscendingOrder);  // model order until the user sorts
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::SingleSelection);
  table_->setWordWrap(false);
  table_->verticalHeader()->hide();
  table_->verticalHeader()->setDefaultSectionSize(table_->fontMetrics().height() + 6);
  table_->horizontalHeader()->setStretchLastSection(false);

  auto* top = new QHBoxLayout;
  top->addWidget(title_, 1);
  top->addWidget(progress_);
  top->addWidget(cancel_);
  top->addWidget(compare_);
  auto* bar = new QHBoxLayout;
  bar->addWidget(filter_, 1);
  bar->addWidget(only_diff_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(top);
  layout->addWidget(summary_);
  layout->addWidget(error_);
  layout->addLayout(bar);
  layout->addWidget(table_, 1);

  connect(compare_, &QPushButton::clicked, this, &ModelDiffView::chooseAndCompare);
  connect(cancel_, &QPushButton::clicked, this, [this] { context_.cancelModelDiff(); });
  connect(filter_, &QLineEdit::textChanged, proxy_, &ModelDiffFilter::setNameFilter);
  connect(only_diff_, &QCheckBox::toggled, proxy_, &ModelDiffFilter::setOnlyDifferences);
  connect(table_->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
          [this](const QModelIndex& current) {
            if (!current.isValid()) return;
            const QString name =
                proxy_->data(proxy_->index(current.row(), ModelDiffTableModel::Name)).toString();
            if (name == context_.selection().layer) return;
            Selection s = context_.selection();
            s.layer = name;
            context_.setSelection(s);
          });
  context_.addViewer(this);
  onModelDiffUpdated();
}

ModelDiffView::~ModelDiffView() { context_.removeViewer(this); }

int ModelDiffView::visibleRowCount() const { return proxy_->rowCount(); }

void ModelDiffView::chooseAndCompare() {
  if (!compare_->isEnabled()) return;  // no model (A) yet: the panel's title says so
  QString path = QFileDialog::getOpenFileName(
      this, tr("Compare with model"), QFileInfo(context_.model().path).absolutePath(),
      tr("Models (*.safetensors *.gguf *.bin config.json);;All files (*)"));
  if (path.isEmpty()) return;
  // A Hugging Face model is a directory: its config.json stands for it in the dialog.
  if (QFileInfo(path).fileName() == QLatin1String("config.json"))
    path = QFileInfo(path).absolutePath();
  context_.startModelDiff(path);
}

void ModelDiffView::updateHeader() {
  const ModelDiffResult& d = context_.modelDiff();
  const bool running = d.state == ModelDiffState::Running;
  compare_->setEnabled(!context_.model().path.isEmpty() && !context_.model().loading &&
                       context_.model().error.isEmpty());
  cancel_->setVisible(running);
  progress_->setVisible(running);
  if (d.state == ModelDiffState::None) {
    title_->setText(context_.model().path.isEmpty()
                        ? tr("Open a model, then compare it with another one (for example its "
                             "compressed copy).")
                        : tr("A: %1 — compare it with another model to see what changed, "
                             "tensor by tensor.")
                              .arg(QFileInfo(context_.model().path).fileName()));
  } else {
    title_->setText(tr("A: %1   ↔   B: %2")
                        .arg(QFileInfo(d.path_a).fileName(), QFileInfo(d.path_b).fileName()));
    title_->setToolTip(tr("A: %1\nB: %2").arg(d.path_a, d.path_b));
  }
  switch (d.state) {
    case ModelDiffState::None:
      summary_->clear();
      break;
    case ModelDiffState::Running:
      summary_->setText(tr("Comparing…"));
      break;
    case ModelDiffState::Cancelled:
      summary_->setText(tr("Comparison cancelled."));
      break;
    case ModelDiffState::Failed:
      summary_->setText(tr("Comparison failed."));
      break;
    case ModelDiffState::Done: {
      QString text = model_diff_summary_text(d.summary) +
                     tr("  ·  size %1 → %2")
                         .arg(format_bytes(d.summary.bytes_a), format_bytes(d.summary.bytes_b));
      const ModelDiffSummary& s = d.summary;
      if (s.tensors > 0 && s.tensors == s.only_in_a + s.only_in_b && s.only_in_a && s.only_in_b)
        text +=
            tr("\nNo tensor name is in both models: they name tensors differently (a GGUF "
               "or llama2.c file against a Hugging Face one?); names are matched exactly.");
      summary_->setText(text);
      break;
    }
  }
  summary_->setVisible(d.state != ModelDiffState::None);
  error_->setVisible(d.state == ModelDiffState::Failed);
  error_->setText(d.error);
}

void ModelDiffView::onModelLoaded() { updateHeader(); }

void ModelDiffView::onModelDiffUpdated() {
  const ModelDiffResult& d = context_.modelDiff();
  if (d.state == ModelDiffState::Running) progress_->setValue(0);
  model_->setRows(d.state == ModelDiffState::Done ? d.rows : QList<TensorDiffRow>{});
  if (d.state == ModelDiffState::Done) {
    table_->resizeColumnsToContents();
    onSelectionChanged();
  }
  updateHeader();
  if (d.state == ModelDiffState::Done) emit resultShown();
}

void ModelDiffView::onJobUpdated(const JobProgress& job) {
  if (job.id != context_.modelDiff().job_id || job.state != JobState::Running) return;
  progress_->setValue(int(job.fraction * 1000));
}

void ModelDiffView::onSelectionChanged() {
  const QString& layer = context_.selection().layer;
  const QModelIndex current = table_->currentIndex();
  if (current.isValid() &&
      proxy_->data(proxy_->index(current.row(), ModelDiffTableModel::Name)).toString() == layer)
    return;
  for (int r = 0; r < proxy_->rowCount(); ++r)
    if (proxy_->data(proxy_->index(r, ModelDiffTableModel::Name)).toString() == layer) {
      table_->selectRow(r);
      return;
    }
}

}  // namespace mcw::ui
