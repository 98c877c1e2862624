#include "app/studio/main_window.h"

#include <QAction>
#include <QCloseEvent>
#include <QDockWidget>
#include <QFileInfo>
#include <QMessageBox>
#include <QMimeData>
#include <QPushButton>
#include <QSettings>
#include <QStatusBar>

#include "widgets/jobs_panel.h"
#include "widgets/model_diff_view.h"
#include "widgets/model_panel.h"
#include "widgets/project_panel.h"
#include "widgets/recipe_editor_panel.h"
#include "widgets/runs_panel.h"
#include "widgets/sensitivity_panel.h"
#include "widgets/start_page.h"
#include "widgets/tensor_inspector.h"
#include "widgets/tradeoff_panel.h"

namespace mcw::studio {

static const char* kGeometryKey = "mainWindow/geometry";
static const char* kStateKey = "mainWindow/state";
static const char* kThemeKey = "theme";
static constexpr int kLayoutVersion = 4;  // bump when docks are added or renamed

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent), context_(std::make_unique<ProjectContext>()) {
  setObjectName(QStringLiteral("mainWindow"));
  setWindowTitle(tr("MCW Studio"));
  setAcceptDrops(true);
  setDockNestingEnabled(true);
  resize(1400, 860);
  model_panel_ = new ui::ModelPanel(*context_, this);
  setCentralWidget(model_panel_);
  createDocks();
  createMenus();
  statusBar()->showMessage(tr("Ready"));
  context_->addViewer(this);
  connect(context_.get(), &ProjectContext::damagedRunStore, this, &MainWindow::offerFreshRunStore);
  setTheme(theme_from_key(QSettings().value(kThemeKey).toString()));
  restoreLayout();
  onProjectLoaded();
}

// Not modal: the window (and any test driving it) goes on while the question is open.
void MainWindow::offerFreshRunStore(const QString& path, const QString& message) {
  auto* box = new QMessageBox(QMessageBox::Warning, tr("Damaged run store"),
                              tr("The project's run store cannot be read:\n%1\n\nStart a fresh "
                                 "store? The damaged file is kept beside it (renamed), so that "
                                 "nothing in it is lost.")
                                  .arg(message),
                              QMessageBox::NoButton, this);
  box->setObjectName(QStringLiteral("damagedRunStoreBox"));
  box->setAttribute(Qt::WA_DeleteOnClose);
  QPushButton* fresh = box->addButton(tr("Start a Fresh Store"), QMessageBox::AcceptRole);
  box->addButton(tr("Leave It"), QMessageBox::RejectRole);
  box->setDefaultButton(fresh);
  box->setDetailedText(path);
  connect(box, &QMessageBox::buttonClicked, this, [this, fresh](QAbstractButton* b) {
    if (b == fresh) context_->startFreshRunStore();
  });
  box->open();
}

MainWindow::~MainWindow() {
  // Panels unregister from the context in their destructors: delete them while it lives.
  context_->removeViewer(this);
  context_->bridge().cancelAll();
  delete takeCentralWidget();
  for (QDockWidget* d : {start_dock_, project_dock_, jobs_dock_, runs_dock_, tradeoff_dock_,
                         recipe_dock_, sensitivity_dock_, inspector_dock_, diff_dock_})
    delete d;
}

void MainWindow::createDocks() {
  auto make = [this](const QString& title, const QString& name, QWidget* panel,
                     Qt::DockWidgetArea area) {
    auto* dock = new QDockWidget(title, this);
    dock->setObjectName(name);
    dock->setWidget(panel);
    addDockWidget(area, dock);
    return dock;
  };
  start_page_ = new ui::StartPage(*context_);
  project_panel_ = new ui::ProjectPanel(*context_);
  jobs_panel_ = new ui::JobsPanel(*context_);
  start_dock_ = make(tr("Start"), QStringLiteral("startDock"), start_page_, Qt::LeftDockWidgetArea);
  project_dock_ =
      make(tr("Project"), QStringLiteral("projectDock"), project_panel_, Qt::LeftDockWidgetArea);
  jobs_dock_ =
      make(tr("Jobs and Log"), QStringLiteral("jobsDock"), jobs_panel_, Qt::BottomDockWidgetArea);
  // Not "Jobs & Log": menus and dock tabs read '&' as a mnemonic, dock title bars do not.
  runs_panel_ = new ui::RunsPanel(*context_);
  tradeoff_panel_ = new ui::TradeoffPanel(*context_);
  runs_dock_ = make(tr("Runs"), QStringLiteral("runsDock"), runs_panel_, Qt::BottomDockWidgetArea);
  tradeoff_dock_ = make(tr("Trade-off"), QStringLiteral("tradeoffDock"), tradeoff_panel_,
                        Qt::RightDockWidgetArea);
  tabifyDockWidget(start_dock_, project_dock_);
  tabifyDockWidget(jobs_dock_, runs_dock_);
  // Below the Model panel, full width for its many columns, and beside it rather than in
  // it, so that both tables show at once: picking a row in one selects it in the other.
  diff_view_ = new ui::ModelDiffView(*context_);
  diff_dock_ =
      make(tr("Model Diff"), QStringLiteral("modelDiffDock"), diff_view_, Qt::BottomDockWidgetArea);
  tabifyDockWidget(runs_dock_, diff_dock_);
  connect(diff_view_, &ui::ModelDiffView::resultShown, diff_dock_, [this] {
    diff_dock_->show();
    diff_dock_->raise();
    // Room for a screenful of rows, unless the user already made it tall enough.
    if (!diff_dock_->isFloating() && diff_dock_->height() < height() / 3)
      resizeDocks({diff_dock_}, {height() * 2 / 5}, Qt::Vertical);
  });
  start_dock_->raise();
  recipe_editor_ = new ui::RecipeEditorPanel(*context_);
  sensitivity_panel_ = new ui::SensitivityPanel(*context_);
  recipe_dock_ =
      make(tr("Recipes"), QStringLiteral("recipeDock"), recipe_editor_, Qt::RightDockWidgetArea);
  sensitivity_dock_ = make(tr("Sensitivity"), QStringLiteral("sensitivityDock"),
                           sensitivity_panel_, Qt::RightDockWidgetArea);
  tabifyDockWidget(tradeoff_dock_, recipe_dock_);
  tabifyDockWidget(recipe_dock_, sensitivity_dock_);
  inspector_ = new ui::TensorInspector(*context_);
  inspector_dock_ = make(tr("Tensor inspector"), QStringLiteral("inspectorDock"), inspector_,
                         Qt::RightDockWidgetArea);
  tabifyDockWidget(sensitivity_dock_, inspector_dock_);
  tradeoff_dock_->raise();
  jobs_dock_->raise();
  resizeDocks({start_dock_, tradeoff_dock_}, {420, 560}, Qt::Horizontal);
  resizeDocks({jobs_dock_}, {240}, Qt::Vertical);
}

void MainWindow::saveLayout() {
  QSettings s;
  s.setValue(kGeometryKey, saveGeometry());
  s.setValue(kStateKey, saveState(kLayoutVersion));
  s.setValue(kThemeKey, theme_key(theme_));
}

bool MainWindow::restoreLayout() {
  QSettings s;
  if (!s.contains(kStateKey)) return false;
  restoreGeometry(s.value(kGeometryKey).toByteArray());
  return restoreState(s.value(kStateKey).toByteArray(), kLayoutVersion);
}

void MainWindow::setTheme(Theme theme) {
  theme_ = theme;
  apply_theme(theme);
  if (dark_action_) dark_action_->setChecked(theme == Theme::Dark);
}

void MainWindow::onProjectLoaded() {
  const ui::ProjectSummary& p = context_->project();
  if (context_->hasProject()) {
    setWindowTitle(tr("%1%2 — MCW Studio").arg(p.name, p.dirty ? QStringLiteral(" *") : QString()));
    project_dock_->raise();
  } else {
    setWindowTitle(tr("MCW Studio"));
  }
  if (evaluate_action_) evaluate_action_->setEnabled(context_->hasProject());
  if (run_all_action_) run_all_action_->setEnabled(context_->hasProject());
  updateExportActions();
  setWindowModified(p.dirty);
}

void MainWindow::onSelectionChanged() { updateExportActions(); }
void MainWindow::onRunUpdated(qint64) { updateExportActions(); }

void MainWindow::onJobUpdated(const ui::JobProgress& job) {
  if (job.state == ui::JobState::Running) return;
  // How the UI kept up while the job ran (also in the log).
  const HeartbeatStats s = context_->heartbeatStats(job.id);
  if (s.meaningful())
    statusBar()->showMessage(tr("%1: %2 — UI heartbeat %3")
                                 .arg(job.name, ui::job_state_name(job.state), s.describe()),
                             15000);
}

void MainWindow::openPath(const QString& path) {
  if (path.endsWith(QLatin1String(".mcwproj"), Qt::CaseInsensitive)) {
    if (!confirmDiscard()) return;
    if (!context_->openProject(path))
      statusBar()->showMessage(tr("Could not open %1 (see the log)").arg(path), 8000);
  } else {
    context_->openModel(path);
  }
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (!confirmDiscard()) {
    event->ignore();
    return;
  }
  saveLayout();
  event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  if (event->mimeData()->hasUrls() && event->mimeData()->urls().first().isLocalFile())
    event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
  const QList<QUrl> urls = event->mimeData()->urls();
  if (urls.isEmpty() || !urls.first().isLocalFile()) return;
  event->acceptProposedAction();
  openPath(urls.first().toLocalFile());
}

}  // namespace mcw::studio
