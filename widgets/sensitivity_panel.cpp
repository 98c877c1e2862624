#include "widgets/sensitivity_panel.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QInputDialog>
#include <QShortcut>
#include <QLabel>
#include <QPushButton>
#include <QScrollArea>
#include <QVBoxLayout>
#include <cmath>

#include "widgets/heatmap_view.h"

namespace mcw::ui {

SensitivityPanel::SensitivityPanel(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  caption_ = new QLabel(this);
  caption_->setObjectName(QStringLiteral("sensitivityCaption"));
  caption_->setWordWrap(true);
  status_ = new QLabel(this);
  status_->setObjectName(QStringLiteral("sensitivityStatus"));
  scan_ = new QPushButton(tr("Scan"), this);
  scan_->setObjectName(QStringLiteral("sensitivityScan"));
  latency_ = new QPushButton(tr("Measure latency"), this);
  latency_->setObjectName(QStringLiteral("sensitivityLatency"));
  heatmap_ = new HeatmapView;
  scroll_ = new QScrollArea(this);
  scroll_->setWidget(heatmap_);
  scroll_->setWidgetResizable(true);
  scroll_->setFrameShape(QFrame::NoFrame);

  whatif_ = new QPushButton(tr("What-if"), this);
  whatif_->setObjectName(QStringLiteral("sensitivityWhatIf"));
  whatif_->setCheckable(true);
  whatif_->setToolTip(tr("choose a setting per layer on the heatmap and see the prediction"));
  start_from_ = new QComboBox(this);
  start_from_->setObjectName(QStringLiteral("sensitivityStartFrom"));
  start_from_->setToolTip(tr("start from a project recipe's per-layer settings (a search's answer)"));
  keep_all_ = new QPushButton(tr("Keep all"), this);
  undo_button_ = new QPushButton(tr("Undo"), this);
  redo_button_ = new QPushButton(tr("Redo"), this);
  run_ = new QPushButton(tr("Run this…"), this);
  run_->setObjectName(QStringLiteral("sensitivityRunThis"));
  prediction_ = new QLabel(this);
  prediction_->setObjectName(QStringLiteral("sensitivityPrediction"));
  prediction_->setWordWrap(true);
  prediction_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  auto* top = new QHBoxLayout;
  top->addWidget(status_, 1);
  top->addWidget(scan_);
  top->addWidget(latency_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(caption_);
  layout->addLayout(top);
  auto* whatif_row = new QHBoxLayout;
  for (QWidget* w : std::initializer_list<QWidget*>{whatif_, start_from_, keep_all_, undo_button_,
                                                    redo_button_, run_})
    whatif_row->addWidget(w);
  whatif_row->addStretch(1);
  layout->addLayout(whatif_row);
  layout->addWidget(prediction_);
  layout->addWidget(scroll_, 1);
  connect(scan_, &QPushButton::clicked, this, [this] { context_.startSensitivityScan(); });
  connect(latency_, &QPushButton::clicked, this, [this] { context_.startLatencyMeasure(); });
  connect(whatif_, &QPushButton::toggled, this, [this](bool on) {
    heatmap_->setAssigning(on);
    updateWhatIfControls();
  });
  connect(heatmap_, &HeatmapView::assignPressed, this, &SensitivityPanel::assignPressed);
  connect(heatmap_, &HeatmapView::assignDragged, this, &SensitivityPanel::assignDragged);
  connect(heatmap_, &HeatmapView::assignKey, this, [this](int row, int col) {
    QList<int> a = current();
    if (row < 0 || row >= a.size()) return;
    a[row] = col;
    edit(a);
  });
  connect(keep_all_, &QPushButton::clicked, this, &SensitivityPanel::keepAll);
  connect(undo_button_, &QPushButton::clicked, this, &SensitivityPanel::undo);
  connect(redo_button_, &QPushButton::clicked, this, &SensitivityPanel::redo);
  connect(start_from_, &QComboBox::activated, this, [this](int index) {
    if (index <= 0) return;
    const QList<int> before = current();
    if (context_.assignFromRecipe(start_from_->itemText(index)) && context_.assignment() != before)
      undo_.push_back(before), redo_.clear();
    start_from_->setCurrentIndex(0);
    updateWhatIfControls();
  });
  connect(run_, &QPushButton::clicked, this, [this] {
    QStringList taken;
    for (const RecipePreset& r : context_.recipePresets())
      if (r.in_project) taken << r.name;
    QString name;
    for (int k = 1; name.isEmpty() || taken.contains(name); ++k) name = QStringLiteral("whatif-%1").arg(k);
    bool ok = false;
    name = QInputDialog::getText(this, tr("Run this assignment"),
                                 tr("Recipe name (added to the project):"), QLineEdit::Normal,
                                 name, &ok);
    if (ok && !name.trimmed().isEmpty()) runAssignmentAs(name.trimmed());
  });
  auto* undo_key = new QShortcut(QKeySequence::Undo, this, [this] { undo(); });
  undo_key->setContext(Qt::WidgetWithChildrenShortcut);
  auto* redo_key = new QShortcut(QKeySequence::Redo, this, [this] { redo(); });
  redo_key->setContext(Qt::WidgetWithChildrenShortcut);
  context_.addViewer(this);
  onSensitivityLoaded();
  refreshStartFrom();
  onAssignmentChanged();
}

SensitivityPanel::~SensitivityPanel() { context_.removeViewer(this); }

void SensitivityPanel::updateScanButton() {
  const bool running = context_.sensitivityScanRunning();
  const bool ready = context_.hasProject() && !context_.model().path.isEmpty() &&
                     !context_.model().loading && context_.model().error.isEmpty();
  scan_->setEnabled(context_.sensitivityScanAvailable() && !running);
  scan_->setToolTip(running  ? tr("a scan is running: cancel it in the Jobs panel")
                    : !ready ? tr("open a project with a model to scan")
                    : !scan_->isEnabled()
                        ? tr("this model cannot be scanned (llama-family models only)")
                        : tr("compress each layer alone at each setting and measure the "
                             "divergence (cells already in the project's store are reused)"));
  const bool timing = context_.latencyMeasureRunning();
  const bool timed = !std::isnan(context_.sensitivity().model_latency_ms);
  latency_->setEnabled(context_.latencyMeasureAvailable() && !timing);
  latency_->setToolTip(
      timing   ? tr("latency is being measured: cancel it in the Jobs panel")
      : !ready ? tr("open a project with a model to time its layers")
      : !latency_->isEnabled()
          ? tr("this model's layers cannot be timed (llama-family models only)")
          : tr("time each layer at each setting on this machine's packed kernels (one layer "
               "per weight shape) for the what-if prediction's decode latency%1")
                .arg(timed ? tr("; a table for this machine is stored already") : QString()));
}

void SensitivityPanel::onJobUpdated(const JobProgress&) { updateScanButton(); }

void SensitivityPanel::onProjectLoaded() {
  updateScanButton();
  refreshStartFrom();
}
void SensitivityPanel::onModelLoaded() { updateScanButton(); }

void SensitivityPanel::onSensitivityLoaded() {
  const SensitivityGrid& g = context_.sensitivity();
  // The grid holds one measure: the caption and the legend say which.
  caption_->setText(tr("%1, each layer compressed alone at each setting").arg(g.title));
  heatmap_->setQuantity(g.quantity);
  heatmap_->setAxes(g.layers, g.settings);
  for (int r = 0; r < g.layers.size(); ++r)
    for (int c = 0; c < g.settings.size(); ++c)
      if (g.at(r, c).ready) heatmap_->setCell(r, c, g.at(r, c).value, g.at(r, c).perplexity);
  heatmap_->setEmptyText(context_.model().path.isEmpty()
                             ? tr("Open a model to see its sensitivity results.")
                             : tr("No sensitivity results are cached for this model."));
  status_->setText(g.status);
  heatmap_->setAssignment(context_.assignment());
  updateScanButton();
}

void SensitivityPanel::onSensitivityCell(int row, int col) {
  const SensitivityGrid& g = context_.sensitivity();
  if (row < 0 || col < 0 || row >= g.layers.size() || col >= g.settings.size()) return;
  const SensitivityCell& c = g.at(row, col);
  if (c.ready) heatmap_->setCell(row, col, c.value, c.perplexity);
  status_->setText(g.status);
}

}  // namespace mcw::ui

namespace mcw::ui {

QList<int> SensitivityPanel::current() const { return context_.assignment(); }

void SensitivityPanel::edit(const QList<int>& next) {
  const QList<int> before = current();
  if (next == before) return;
  undo_.push_back(before);
  redo_.clear();
  context_.setAssignment(next);
}

void SensitivityPanel::assignPressed(int row, int col) {
  QList<int> a = current();
  if (row < 0 || row >= a.size()) return;
  drag_keeps_ = a[row] == col;  // a chosen cell clicked again: keep the layer
  a[row] = drag_keeps_ ? -1 : col;
  edit(a);
}

void SensitivityPanel::assignDragged(int row, int col) {
  QList<int> a = current();  // the press already made the undo step
  if (row < 0 || row >= a.size()) return;
  a[row] = drag_keeps_ ? -1 : col;
  context_.setAssignment(a);
}

void SensitivityPanel::keepAll() { edit(QList<int>(current().size(), -1)); }

void SensitivityPanel::undo() {
  if (undo_.isEmpty()) return;
  redo_.push_back(current());
  context_.setAssignment(undo_.takeLast());
}

void SensitivityPanel::redo() {
  if (redo_.isEmpty()) return;
  undo_.push_back(current());
  context_.setAssignment(redo_.takeLast());
}

int SensitivityPanel::runAssignmentAs(const QString& name) { return context_.runAssignment(name); }

void SensitivityPanel::refreshStartFrom() {
  start_from_->clear();
  start_from_->addItem(tr("Start from…"));
  for (const RecipePreset& r : context_.recipePresets())
    if (r.in_project) start_from_->addItem(r.name);
  updateWhatIfControls();
}

void SensitivityPanel::onAssignmentChanged() {
  heatmap_->setAssignment(context_.assignment());
  const AssignmentPrediction& p = context_.assignmentPrediction();
  QString text;
  if (p.valid) {
    text = tr("<b>What-if:</b> %1 layers compressed, %2 kept · %3 bits/weight · %4")
               .arg(p.compressed)
               .arg(p.kept)
               .arg(p.bits_per_weight, 0, 'f', 3)
               .arg(format_bytes(quint64(p.size_bytes)));
    auto band = [](double v, double lo, double hi, int digits) {
      QString s = QString::number(v, 'g', digits);
      if (std::isfinite(lo) && std::isfinite(hi))
        s += QStringLiteral(" [%1 – %2]").arg(QString::number(lo, 'g', digits),
                                               QString::number(hi, 'g', digits));
      return s;
    };
    if (std::isfinite(p.kl))
      text += tr(" · KL %1").arg(band(p.kl, p.kl_low, p.kl_high, 3));
    else
      text += tr(" · Σ %1 %2 (a ranking, not a KL)").arg(p.quantity).arg(p.score, 0, 'g', 3);
    if (std::isfinite(p.perplexity))
      text += tr(" · perplexity %1").arg(band(p.perplexity, p.perplexity_low, p.perplexity_high, 4));
    if (std::isfinite(p.kl) && p.calibration_runs < 2)
      text += tr(" <i>(no band yet: it needs two runs made from predictions)</i>");
  } else if (whatif_->isChecked() || p.compressed > 0) {
    text = tr("<b>What-if:</b> %1").arg(p.error.toHtmlEscaped());
  }
  prediction_->setText(text);
  prediction_->setVisible(!text.isEmpty());
  updateWhatIfControls();
}

void SensitivityPanel::updateWhatIfControls() {
  const bool grid = !context_.sensitivity().layers.isEmpty();
  const bool on = whatif_->isChecked();
  whatif_->setEnabled(grid);
  start_from_->setVisible(on);
  start_from_->setEnabled(grid && start_from_->count() > 1);
  for (QPushButton* b : {keep_all_, undo_button_, redo_button_, run_}) b->setVisible(on);
  keep_all_->setEnabled(grid);
  undo_button_->setEnabled(!undo_.isEmpty());
  redo_button_->setEnabled(!redo_.isEmpty());
  run_->setEnabled(context_.assignmentPrediction().valid);
  run_->setToolTip(context_.assignmentPrediction().valid
                       ? tr("write the assignment as a recipe, add it to the project and run it")
                       : context_.assignmentPrediction().error);
}

}  // namespace mcw::ui
