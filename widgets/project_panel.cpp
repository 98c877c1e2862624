#include "widgets/project_panel.h"

#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "widgets/recipe_editor_panel.h"

namespace mcw::ui {

ProjectPanel::ProjectPanel(IProjectContext& context, QWidget* parent)
    : QWidget(parent), context_(context) {
  title_ = new QLabel(this);
  QFont f = title_->font();
  f.setBold(true);
  f.setPointSizeF(f.pointSizeF() * 1.2);
  title_->setFont(f);
  tree_ = new QTreeWidget(this);
  tree_->setObjectName(QStringLiteral("projectTree"));
  tree_->setColumnCount(2);
  tree_->setHeaderLabels({tr("Item"), tr("Value")});
  tree_->header()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
  tree_->setRootIsDecorated(true);
  problems_ = new QLabel(this);
  problems_->setObjectName(QStringLiteral("projectProblems"));
  problems_->setStyleSheet(QStringLiteral("color: #e0504a;"));
  problems_->setWordWrap(true);
  problems_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  evaluate_ = new QPushButton(tr("Evaluate perplexity"), this);
  evaluate_->setToolTip(tr("Perplexity of the project's model on its evaluation text"));

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(title_);
  layout->addWidget(tree_, 1);
  layout->addWidget(problems_);
  layout->addWidget(evaluate_);
  connect(evaluate_, &QPushButton::clicked, this, [this] { context_.startEvaluate(); });
  context_.addViewer(this);
  onProjectLoaded();
}

ProjectPanel::~ProjectPanel() { context_.removeViewer(this); }

static QTreeWidgetItem* add_row(QTreeWidgetItem* parent, const QString& key, const QString& value) {
  auto* item = new QTreeWidgetItem(parent, {key, value.isEmpty() ? QStringLiteral("–") : value});
  item->setToolTip(1, value);
  return item;
}

void ProjectPanel::onModelLoaded() { onProjectLoaded(); }

void ProjectPanel::onProjectLoaded() {
  tree_->clear();
  const bool open = context_.hasProject();
  evaluate_->setEnabled(open);
  if (!open) {
    title_->setText(tr("No project"));
    problems_->clear();
    problems_->hide();
    return;
  }
  const ProjectSummary& p = context_.project();
  title_->setText(p.name + (p.dirty ? QStringLiteral(" *") : QString()));
  auto* files = new QTreeWidgetItem(tree_, {tr("Files")});
  add_row(files, tr("Project"), p.file.isEmpty() ? tr("(not saved)") : p.file);
  add_row(files, tr("Model"), p.model_path);
  add_row(files, tr("Run database"), p.database_path);
  auto* data = new QTreeWidgetItem(tree_, {tr("Datasets")});
  add_row(data, tr("Calibration"), p.calibration_path);
  add_row(data, tr("Evaluation"), p.evaluation_path);
  auto* recipes = new QTreeWidgetItem(tree_, {tr("Recipes (%1)").arg(p.recipes.size())});
  for (const RecipeRow& r : p.recipes) {
    QTreeWidgetItem* item = add_row(recipes, r.name, r.source);
    // What running it would take (the run action shows the same line).
    const ResourceEstimateRow e = context_.estimateProjectRecipe(r.name);
    item->setToolTip(1, r.source + QLatin1Char('\n') + describe_estimate(e));
    if (e.exceedsFree()) item->setBackground(1, QColor(0xf5, 0xd7, 0x6e));
  }
  auto* eval = new QTreeWidgetItem(tree_, {tr("Evaluation settings")});
  add_row(eval, tr("Window"), QString::number(p.window));
  add_row(eval, tr("Stride"), QString::number(p.stride));
  add_row(eval, tr("Max tokens"), p.max_tokens ? QString::number(p.max_tokens) : tr("all"));
  tree_->expandAll();
  problems_->setText(p.problems.join(QLatin1Char('\n')));
  problems_->setVisible(!p.problems.isEmpty());
}

}  // namespace mcw::ui
