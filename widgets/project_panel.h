// Project panel: what the open project points to (model, texts, recipes, evaluation
// settings, run database) and, in red, every reference that is broken. Recipes run from
// here (Run, Run all, or a recipe's context menu); the newest runs are listed below them.
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

class QLabel;
class QPushButton;
class QTreeWidget;
class QTreeWidgetItem;

namespace mcw::ui {

class ProjectPanel : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit ProjectPanel(IProjectContext& context, QWidget* parent = nullptr);
  ~ProjectPanel() override;

  void onProjectLoaded() override;
  void onModelLoaded() override;  // recipe estimates depend on the model
  void onRunUpdated(qint64 run_id) override;

  QTreeWidget* tree() const { return tree_; }
  QLabel* problemsLabel() const { return problems_; }
  QPushButton* runButton() const { return run_; }
  QPushButton* runAllButton() const { return run_all_; }
  QString selectedRecipe() const;  // the recipe item under the cursor, or empty
  static constexpr int kMaxRunsListed = 20;

 private:
  IProjectContext& context_;
  QLabel* title_;
  QTreeWidget* tree_;
  QLabel* problems_;
  QPushButton* evaluate_;
  // Runs.
  void fillRuns();
  void showRecipeMenu(const QPoint& pos);
  void updateRunButtons();
  QTreeWidgetItem* recipes_item_ = nullptr;
  QTreeWidgetItem* runs_item_ = nullptr;
  QPushButton* run_;
  QPushButton* run_all_;
};

}  // namespace mcw::ui
