#include "widgets/model_panel.h"

#include <QFileInfo>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QSortFilterProxyModel>
#include <QCheckBox>
#include <QHBoxLayout>
#include <QSplitter>
#include <QStackedWidget>
#include <QTableView>
#include <QTreeView>
#include <QVBoxLayout>

#include "widgets/layer_tree_model.h"
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
  tree_model_ = new LayerTreeModel(context_, this);
  tree_proxy_ = new QSortFilterProxyModel(this);
  tree_proxy_->setSourceModel(tree_model_);
  tree_proxy_->setSortRole(Qt::UserRole);
  tree_proxy_->setFilterRole(LayerTreeModel::kPathRole);  // "layers.3" finds the block
  tree_proxy_->setFilterCaseSensitivity(Qt::CaseInsensitive);
  tree_proxy_->setRecursiveFilteringEnabled(true);  // a match keeps the groups above it
  tree_proxy_->setAutoAcceptChildRows(true);        // and a matching group its contents
  tree_ = new QTreeView(this);
  tree_->setObjectName(QStringLiteral("layerTree"));
  tree_->setModel(tree_proxy_);
  tree_->setSortingEnabled(true);
  tree_->sortByColumn(-1, Qt::AscendingOrder);
  tree_->setSelectionBehavior(QAbstractItemView::SelectRows);
  tree_->setSelectionMode(QAbstractItemView::SingleSelection);
  tree_->setAlternatingRowColors(true);
  tree_->setUniformRowHeights(true);
  tree_->header()->setStretchLastSection(true);
  tree_toggle_ = new QCheckBox(tr("Layer tree"), this);
  tree_toggle_->setObjectName(QStringLiteral("layerTreeToggle"));
  tree_toggle_->setToolTip(tr("Group tensors by layer with totals; off: a flat table with "
                              "value statistics"));
  tree_toggle_->setChecked(true);
  views_ = new QStackedWidget(this);
  views_->addWidget(tree_);
  views_->addWidget(table_);
  packed_view_ = new PackedLayerView(this);
  packed_view_->setObjectName(QStringLiteral("packedLayerView"));
  splitter_ = new QSplitter(Qt::Vertical, this);
  splitter_->addWidget(views_);
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
  auto* filter_row = new QHBoxLayout;
  filter_row->addWidget(filter_, 1);
  filter_row->addWidget(tree_toggle_);
  layout->addLayout(filter_row);
  layout->addWidget(splitter_, 1);

  connect(filter_, &QLineEdit::textChanged, proxy_, &QSortFilterProxyModel::setFilterFixedString);
  connect(filter_, &QLineEdit::textChanged, this, [this](const QString& text) {
    tree_proxy_->setFilterFixedString(text);
    if (!text.isEmpty()) tree_->expandAll();  // show what matched
  });
  connect(tree_toggle_, &QCheckBox::toggled, this, &ModelPanel::setTreeShown);
  connect(tree_, &QTreeView::expanded, this, [this] {
    for (int c : {int(LayerTreeModel::Name), int(LayerTreeModel::Scheme)}) tree_->resizeColumnToContents(c);
  });
  connect(tree_->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
          [this](const QModelIndex& current) {
            const QModelIndex source = tree_proxy_->mapToSource(current.siblingAtColumn(0));
            if (tree_model_->tensorRow(source) < 0) return;  // a group
            const QString name = source.data(LayerTreeModel::kPathRole).toString();
            if (name == context_.selection().layer) return;
            Selection s = context_.selection();
            s.layer = name;
            context_.setSelection(s);
          });
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

void ModelPanel::setTreeShown(bool tree) {
  if (tree_toggle_->isChecked() != tree) tree_toggle_->setChecked(tree);
  views_->setCurrentWidget(tree ? static_cast<QWidget*>(tree_) : table_);
}

bool ModelPanel::treeShown() const { return views_->currentWidget() == tree_; }

void ModelPanel::selectInTree(const QString& layer) {
  const QModelIndex at = tree_proxy_->mapFromSource(tree_model_->indexOfTensor(layer));
  if (!at.isValid() || tree_->currentIndex().siblingAtColumn(0) == at) return;
  for (QModelIndex p = at.parent(); p.isValid(); p = p.parent()) tree_->expand(p);
  tree_->setCurrentIndex(at);
  tree_->scrollTo(at);
}

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
    if (r.name == layer && r.packed >= 0 && r.packed < m.packed.size()) {
      if (!m.packed[r.packed].parameters_loaded) context_.requestPackedParameters(r.packed);
      return packed_view_->showLayer(layer, &m.packed[r.packed]);
    }
  packed_view_->showLayer(layer, nullptr);
}

void ModelPanel::onModelLoaded() {
  model_->reset();
  tree_model_->reset();
  const bool packed = !context_.model().packed.isEmpty();
  for (int c : {TensorTableModel::Scheme, TensorTableModel::BitsPerWeight, TensorTableModel::Sparsity})
    table_->setColumnHidden(c, !packed);
  for (int c : {LayerTreeModel::Scheme, LayerTreeModel::BitsPerWeight, LayerTreeModel::Sparsity})
    tree_->setColumnHidden(c, !packed);
  table_->resizeColumnsToContents();
  tree_->expandToDepth(1);  // model ▸ layers ▸ each block
  for (int c = 0; c < LayerTreeModel::ColumnCount; ++c) tree_->resizeColumnToContents(c);
  updateHeader();
  updatePackedView();
}

void ModelPanel::onPackedParametersLoaded(int /*index*/) { updatePackedView(); }

void ModelPanel::onTensorStatsUpdated(int row) {
  model_->statsChanged(row);
  if (model_->statsReadyCount() == context_.model().tensors.size())
    table_->resizeColumnsToContents();
  updateHeader();
}

void ModelPanel::onSelectionChanged() {
  updatePackedView();
  const QString& layer = context_.selection().layer;
  selectInTree(layer);
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
