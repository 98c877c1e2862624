// The studio's main window: panels in docks around the Model panel, the menus, the
// layout and theme remembered in QSettings, and model/project files dropped onto it.
// It owns the ProjectContext; panels meet only there.
#pragma once
#include <QMainWindow>
#include <memory>

#include "app/studio/project_context.h"
#include "app/studio/theme.h"

class QDockWidget;
class QMenu;

namespace mcw::ui {
class JobsPanel;
class ModelDiffView;
class ModelPanel;
class ProjectPanel;
class RecipeEditorPanel;
class RunsPanel;
class SensitivityPanel;
class StartPage;
class TensorInspector;
class TradeoffPanel;
}  // namespace mcw::ui

namespace mcw::studio {

class MainWindow : public QMainWindow, public ui::IProjectViewer {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;
  // The damaged-store question (ProjectContext::damagedRunStore), asked without blocking.
  void offerFreshRunStore(const QString& path, const QString& message);

  ProjectContext& context() { return *context_; }
  ui::ModelPanel* modelPanel() const { return model_panel_; }
  ui::ProjectPanel* projectPanel() const { return project_panel_; }
  ui::JobsPanel* jobsPanel() const { return jobs_panel_; }
  ui::StartPage* startPage() const { return start_page_; }
  QDockWidget* startDock() const { return start_dock_; }
  QDockWidget* projectDock() const { return project_dock_; }
  QDockWidget* jobsDock() const { return jobs_dock_; }
  QAction* evaluateAction() const { return evaluate_action_; }
  ui::RecipeEditorPanel* recipeEditor() const { return recipe_editor_; }
  ui::SensitivityPanel* sensitivityPanel() const { return sensitivity_panel_; }
  QDockWidget* recipeDock() const { return recipe_dock_; }
  QDockWidget* sensitivityDock() const { return sensitivity_dock_; }
  ui::RunsPanel* runsPanel() const { return runs_panel_; }
  ui::TradeoffPanel* tradeoffPanel() const { return tradeoff_panel_; }
  QDockWidget* runsDock() const { return runs_dock_; }
  QDockWidget* tradeoffDock() const { return tradeoff_dock_; }
  QAction* runAllAction() const { return run_all_action_; }
  // Run ▸ Exact Activations: int8 activations off for quantised weights (saved setting).
  QAction* exactActivationsAction() const { return exact_activations_action_; }
  ui::TensorInspector* tensorInspector() const { return inspector_; }
  QDockWidget* inspectorDock() const { return inspector_dock_; }
  ui::ModelDiffView* modelDiffView() const { return diff_view_; }
  QDockWidget* modelDiffDock() const { return diff_dock_; }
  QAction* compareModelAction() const { return compare_model_action_; }

  void saveLayout();     // geometry, dock layout and theme into QSettings
  bool restoreLayout();  // false when nothing was saved yet
  void setTheme(Theme theme);
  Theme theme() const { return theme_; }
  void openPath(const QString& path);  // a project (*.mcwproj) or a model file

  void onProjectLoaded() override;
  void onSelectionChanged() override;
  void onRunUpdated(qint64 run_id) override;
  void onJobUpdated(const ui::JobProgress& job) override;
  QAction* exportReportAction() const { return export_report_action_; }
  QAction* exportModelAction() const { return export_model_action_; }

 protected:
  void closeEvent(QCloseEvent* event) override;
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  void createDocks();
  void createMenus();
  void rebuildRecentMenu();
  bool confirmDiscard();
  void newProject();
  void openProjectDialog();
  bool save();
  bool saveAs();
  void openModelDialog();
  void exportReportDialog();
  void exportModelDialog();
  void updateExportActions();

  std::unique_ptr<ProjectContext> context_;
  ui::ModelPanel* model_panel_ = nullptr;
  ui::ProjectPanel* project_panel_ = nullptr;
  ui::JobsPanel* jobs_panel_ = nullptr;
  ui::StartPage* start_page_ = nullptr;
  QDockWidget* start_dock_ = nullptr;
  QDockWidget* project_dock_ = nullptr;
  QDockWidget* jobs_dock_ = nullptr;
  ui::RecipeEditorPanel* recipe_editor_ = nullptr;
  ui::SensitivityPanel* sensitivity_panel_ = nullptr;
  QDockWidget* recipe_dock_ = nullptr;
  QDockWidget* sensitivity_dock_ = nullptr;
  ui::RunsPanel* runs_panel_ = nullptr;
  ui::TradeoffPanel* tradeoff_panel_ = nullptr;
  QDockWidget* runs_dock_ = nullptr;
  QDockWidget* tradeoff_dock_ = nullptr;
  QAction* run_all_action_ = nullptr;
  QAction* exact_activations_action_ = nullptr;
  ui::TensorInspector* inspector_ = nullptr;
  QDockWidget* inspector_dock_ = nullptr;
  ui::ModelDiffView* diff_view_ = nullptr;
  QDockWidget* diff_dock_ = nullptr;
  QAction* compare_model_action_ = nullptr;
  QMenu* recent_menu_ = nullptr;
  QAction* evaluate_action_ = nullptr;
  QAction* export_report_action_ = nullptr;
  QAction* export_model_action_ = nullptr;
  QAction* dark_action_ = nullptr;
  Theme theme_ = Theme::Light;
};

}  // namespace mcw::studio
