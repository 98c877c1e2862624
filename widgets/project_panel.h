// Project panel: what the open project points to (model, texts, recipes, evaluation
// settings, run database) and, in red, every reference that is broken.
#pragma once
#include <QWidget>

#include "widgets/project_context_api.h"

class QLabel;
class QPushButton;
class QTreeWidget;

namespace mcw::ui {

class ProjectPanel : public QWidget, public IProjectViewer {
  Q_OBJECT
 public:
  explicit ProjectPanel(IProjectContext& context, QWidget* parent = nullptr);
  ~ProjectPanel() override;

  void onProjectLoaded() override;
  void onModelLoaded() override;  // recipe estimates depend on the model

  QTreeWidget* tree() const { return tree_; }
  QLabel* problemsLabel() const { return problems_; }

 private:
  IProjectContext& context_;
  QLabel* title_;
  QTreeWidget* tree_;
  QLabel* problems_;
  QPushButton* evaluate_;
};

}  // namespace mcw::ui
