#include "widgets/model_panel.h"

#include <QFileInfo>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QTableView>
#include <QVBoxLayout>

#include "widgets/packed_layer_view.h"
#include "widgets/tensor_table_model.h"

namespace mcw::ui {

ModelPanel::ModelPanel(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  model_ = new TensorTableModel(context_, this);
  proxy_ = new QSortFilterProxyModel(this);
  proxy_->setSourceModel(model_);
  proxy_->setSortRole(Qt::UserRole);
  proxy_->setFilterKeyColumn(TensorTableModel::Name);
  proxy_->setFilterCaseSensitivity(Qt::CaseInsensitive);

  title_ = new QLabel(this);
  title_->setTextFormat(Qt::PlainText);
  error_ = new QLabel(this);
  error_->setObjectName(QStringLiteral("modelError"));
  error_->setStyleSheet(QStringLiteral("color: #e0504a;"));
  error_->setWordWrap(true);
  error_->hide();
  filter_ = new QLineEdit(this);
  filter_->setObjectName(QStringLiteral("tensorFilter"));
  filter_->setPlaceholderText(tr("Filter tensors by name…"));
  filter_->setClearButtonEnabled(true);
  table_ = new QTableView(this);
  table_->setObjectName(QStringLiteral("tensorTable"));
  table_->setModel(proxy_);
  table_->setSortingEnabled(true);
  table_->sortByColumn(-1, Qt::AscendingOrder);  // file order until the user sorts
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::SingleSelection);
  table_->setAlternatingRowColors(true);
  table_->verticalHeader()->hide();
  table_->verticalHeader()->setDefaultSectionSize(table_->fontMetrics().height() + 6);
  table_->horizontalHeader()->setStretchLastSection(true);
  packed_view_ = new PackedLayerView(this);
  packed_view_->setObjectName(QStringLiteral("packedLayerView"));
  splitter_ = new QSplitter(Qt::Vertical, this);
  splitter_->addWidget(table_);
  splitter_->addWidget(packed_view_);
  splitter_->setStretchFactor(0, 3);
  splitter_->setStretchFactor(1, 2);
  // Room for the summary and about eight rows of parameters before the table gets the rest.
  packed_view_->setMinimumHeight(fontMetrics().height() * 14);
  splitter_->setChildrenCollapsible(false);

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(title_);
  layout->addWidget(error_);
  layout->addWidget(filter_);
  layout->addWidget(splitter_, 1);

  connect(filter_, &QLineEdit::textChanged, proxy_, &QSortFilterProxyModel::setFilterFixedString);
  connect(table_->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
          [this](const QModelIndex& current) {
            if (!current.isValid()) return;
            const QString name =
                proxy_->data(proxy_->index(current.row(), TensorTableModel::Name)).toString();
            if (name == context_.selection().layer) return;
            Selection s = context_.selection();
            s.layer = name;
            context_.setSelection(s);
          });
  context_.addViewer(this);
  onModelLoaded();
}

ModelPanel::~ModelPanel() { context_.removeViewer(this); }

int ModelPanel::visibleRowCount() const { return proxy_->rowCount(); }

void ModelPanel::updateHeader() {
  const ModelSummary& m = context_.model();
  if (m.path.isEmpty()) {
    title_->setText(tr("No model open. Open a project, use File ▸ Open Model…, or drop a "
                       "model file here."));
  } else if (m.loading) {
    title_->setText(tr("Opening %1…").arg(m.path));
  } else if (!m.error.isEmpty()) {
    title_->setText(QFileInfo(m.path).fileName());
  } else {
    const int ready = model_->statsReadyCount();
    QString text = tr("%1  ·  %2  ·  %3 tensors  ·  %4 parameters  ·  %5")
                       .arg(QFileInfo(m.path).fileName(), m.format)
                       .arg(m.tensors.size())
                       .arg(format_count(m.params), format_bytes(m.bytes));
    if (ready < m.tensors.size())
      text += tr("  ·  statistics %1/%2").arg(ready).arg(m.tensors.size());
    if (!m.packed.isEmpty())
      text += tr("  ·  %1: %2 compressed layers")
                  .arg(QFileInfo(m.packed_path).fileName())
                  .arg(m.packed.size());
    title_->setText(text);
  }
  // A bad packed export does not stop the model from opening: it is said here instead.
  const QString error = m.error.isEmpty() ? m.packed_error : m.error;
  error_->setVisible(!error.isEmpty());
  error_->setText(error);
}

void ModelPanel::updatePackedView() {
  const ModelSummary& m = context_.model();
  packed_view_->setVisible(!m.packed.isEmpty());
  if (m.packed.isEmpty()) return;
  const QString& layer = context_.selection().layer;
  for (const TensorRow& r : m.tensors)
    if (r.name == layer && r.packed >= 0 && r.packed < m.packed.size())
      return packed_view_->showLayer(layer, &m.packed[r.packed]);
  packed_view_->showLayer(layer, nullptr);
}

void ModelPanel::onModelLoaded() {
  model_->reset();
  const bool packed = !context_.model().packed.isEmpty();
  for (int c : {TensorTableModel::Scheme, TensorTableModel::BitsPerWeight, TensorTableModel::Sparsity})
    table_->setColumnHidden(c, !packed);
  table_->resizeColumnsToContents();
  updateHeader();
  updatePackedView();
}

void ModelPanel::onTensorStatsUpdated(int row) {
  model_->statsChanged(row);
  if (model_->statsReadyCount() == context_.model().tensors.size())
    table_->resizeColumnsToContents();
  updateHeader();
}

void ModelPanel::onSelectionChanged() {
  updatePackedView();
  const QString& layer = context_.selection().layer;
  const QModelIndex current = table_->currentIndex();
  if (current.isValid() &&
      proxy_->data(proxy_->index(current.row(), TensorTableModel::Name)).toString() == layer)
    return;
  for (int r = 0; r < proxy_->rowCount(); ++r)
    if (proxy_->data(proxy_->index(r, TensorTableModel::Name)).toString() == layer) {
      table_->selectRow(r);
      return;
    }
}

}  // namespace mcw::ui
