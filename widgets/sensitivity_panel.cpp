#include "widgets/sensitivity_panel.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QScrollArea>
#include <QVBoxLayout>

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
  heatmap_ = new HeatmapView;
  scroll_ = new QScrollArea(this);
  scroll_->setWidget(heatmap_);
  scroll_->setWidgetResizable(true);
  scroll_->setFrameShape(QFrame::NoFrame);

  auto* top = new QHBoxLayout;
  top->addWidget(status_, 1);
  top->addWidget(scan_);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(caption_);
  layout->addLayout(top);
  layout->addWidget(scroll_, 1);
  connect(scan_, &QPushButton::clicked, this, [this] { context_.startSensitivityScan(); });
  context_.addViewer(this);
  onSensitivityLoaded();
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
}

void SensitivityPanel::onJobUpdated(const JobProgress&) { updateScanButton(); }

void SensitivityPanel::onProjectLoaded() { updateScanButton(); }
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
