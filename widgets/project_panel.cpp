#include "widgets/project_panel.h"

#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMenu>
#include <QPushButton>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "widgets/recipe_editor_panel.h"

namespace mcw::ui {

// Item data: which recipe or run a tree row stands for.
static constexpr int kRecipeRole = Qt::UserRole + 1;
static constexpr int kRunIdRole = Qt::UserRole + 2;

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
  run_ = new QPushButton(tr("Run"), this);
  run_->setObjectName(QStringLiteral("runRecipe"));
  run_->setToolTip(tr("Compress with the selected recipe, evaluate and record the run"));
  run_all_ = new QPushButton(tr("Run all"), this);
  run_all_->setObjectName(QStringLiteral("runAllRecipes"));
  run_all_->setToolTip(tr("Run every recipe of the project, one after another"));
  tree_->setContextMenuPolicy(Qt::CustomContextMenu);

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(title_);
  layout->addWidget(tree_, 1);
  layout->addWidget(problems_);
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(run_);
  buttons->addWidget(run_all_);
  buttons->addStretch(1);
  buttons->addWidget(evaluate_);
  layout->addLayout(buttons);
  connect(evaluate_, &QPushButton::clicked, this, [this] { context_.startEvaluate(); });
  connect(run_, &QPushButton::clicked, this, [this] {
    const QString recipe = selectedRecipe();
    if (!recipe.isEmpty()) context_.startRun(recipe);
  });
  connect(run_all_, &QPushButton::clicked, this, [this] { context_.startRunAll(); });
  connect(tree_, &QTreeWidget::customContextMenuRequested, this, &ProjectPanel::showRecipeMenu);
  connect(tree_, &QTreeWidget::currentItemChanged, this, &ProjectPanel::updateRunButtons);
  connect(tree_, &QTreeWidget::itemClicked, this, [this](QTreeWidgetItem* item) {
    if (!item || item->parent() != runs_item_) return;
    Selection s = context_.selection();
    s.run_id = item->data(0, kRunIdRole).toLongLong();
    context_.setSelection(s);
  });
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
  recipes_item_ = runs_item_ = nullptr;
  const bool open = context_.hasProject();
  evaluate_->setEnabled(open);
  updateRunButtons();
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
  recipes_item_ = recipes;
  for (const RecipeRow& r : p.recipes) {
    QTreeWidgetItem* item = add_row(recipes, r.name, r.source);
    item->setData(0, kRecipeRole, r.name);
    item->setToolTip(0, tr("Right-click to run %1").arg(r.name));
    // What running it would take (the run action shows the same line).
    const ResourceEstimateRow e = context_.estimateProjectRecipe(r.name);
    item->setToolTip(1, r.source + QLatin1Char('\n') + describe_estimate(e));
    if (e.exceedsFree()) item->setBackground(1, QColor(0xf5, 0xd7, 0x6e));
  }
  auto* eval = new QTreeWidgetItem(tree_, {tr("Evaluation settings")});
  add_row(eval, tr("Window"), QString::number(p.window));
  add_row(eval, tr("Stride"), QString::number(p.stride));
  add_row(eval, tr("Max tokens"), p.max_tokens ? QString::number(p.max_tokens) : tr("all"));
  runs_item_ = new QTreeWidgetItem(tree_);
  fillRuns();
  tree_->expandAll();
  updateRunButtons();
  problems_->setText(p.problems.join(QLatin1Char('\n')));
  problems_->setVisible(!p.problems.isEmpty());
}

void ProjectPanel::onRunUpdated(qint64) {
  if (runs_item_) fillRuns();
}

void ProjectPanel::fillRuns() {
  const QList<RunRow> runs = context_.runs();
  qDeleteAll(runs_item_->takeChildren());
  runs_item_->setText(0, tr("Runs (%1)").arg(runs.size()));
  for (qsizetype i = 0; i < runs.size() && i < kMaxRunsListed; ++i) {
    const RunRow& r = runs[i];
    QString value = r.status;
    if (r.metrics.contains(QStringLiteral("perplexity")))
      value += tr(" · perplexity %1").arg(r.metric(QStringLiteral("perplexity")), 0, 'f', 3);
    if (r.metrics.contains(QStringLiteral("bits_per_weight")))
      value += tr(" · %1 bits/w").arg(r.metric(QStringLiteral("bits_per_weight")), 0, 'f', 2);
    auto* item =
        new QTreeWidgetItem(runs_item_, {QStringLiteral("#%1 %2").arg(r.id).arg(r.recipe), value});
    item->setData(0, kRunIdRole, r.id);
    item->setToolTip(1, r.error.isEmpty() ? value : r.error);
    if (r.status == QLatin1String("failed")) item->setForeground(1, QColor(224, 80, 74));
  }
  if (runs.size() > kMaxRunsListed)
    new QTreeWidgetItem(runs_item_,
                        {tr("… %1 more in the Runs panel").arg(runs.size() - kMaxRunsListed)});
  runs_item_->setExpanded(true);
}

QString ProjectPanel::selectedRecipe() const {
  const QTreeWidgetItem* item = tree_->currentItem();
  return item ? item->data(0, kRecipeRole).toString() : QString();
}

void ProjectPanel::updateRunButtons() {
  const bool open = context_.hasProject();
  run_->setEnabled(open && !selectedRecipe().isEmpty());
  run_all_->setEnabled(open && !context_.project().recipes.isEmpty());
}

void ProjectPanel::showRecipeMenu(const QPoint& pos) {
  if (!context_.hasProject()) return;
  QTreeWidgetItem* item = tree_->itemAt(pos);
  const QString recipe = item ? item->data(0, kRecipeRole).toString() : QString();
  QMenu menu(this);
  if (!recipe.isEmpty()) {
    tree_->setCurrentItem(item);
    menu.addAction(tr("Run \"%1\"").arg(recipe), this,
                   [this, recipe] { context_.startRun(recipe); });
  }
  QAction* all = menu.addAction(tr("Run all recipes"), this, [this] { context_.startRunAll(); });
  all->setEnabled(!context_.project().recipes.isEmpty());
  menu.exec(tree_->viewport()->mapToGlobal(pos));
}

}  // namespace mcw::ui
