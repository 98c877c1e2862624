// MainWindow's menus and the file actions behind them (dialogs live here, never in the
// context, so that tests drive the context directly).
#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QInputDialog>
#include <QMenuBar>
#include <QMessageBox>
#include <QSettings>
#include <QStatusBar>
#include <QToolBar>

#include "app/studio/main_window.h"
#include "engine/export/gguf_file_type.h"
#include "engine/kernels/stored_matmul.h"
#include "widgets/model_diff_view.h"

namespace mcw::studio {

void MainWindow::createMenus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&New Project…"), QKeySequence::New, this, &MainWindow::newProject);
  file->addAction(tr("&Open Project…"), QKeySequence::Open, this, &MainWindow::openProjectDialog);
  recent_menu_ = file->addMenu(tr("Open &Recent"));
  connect(recent_menu_, &QMenu::aboutToShow, this, &MainWindow::rebuildRecentMenu);
  file->addAction(tr("&Save Project"), QKeySequence::Save, this, &MainWindow::save);
  file->addAction(tr("Save Project &As…"), QKeySequence::SaveAs, this, &MainWindow::saveAs);
  file->addSeparator();
  file->addAction(tr("Open &Model…"), QKeySequence(tr("Ctrl+M")), this,
                  &MainWindow::openModelDialog);
  compare_model_action_ = file->addAction(tr("&Compare with Model…"), this, [this] {
    diff_dock_->show();
    diff_dock_->raise();
    diff_view_->chooseAndCompare();
  });
  compare_model_action_->setObjectName(QStringLiteral("compareModelAction"));
  compare_model_action_->setToolTip(tr("Compare the open model tensor by tensor with another "
                                       "model file"));
  file->addSeparator();
  export_report_action_ = file->addAction(tr("Export &Report…"), QKeySequence(tr("Ctrl+E")), this,
                                          &MainWindow::exportReportDialog);
  export_report_action_->setObjectName(QStringLiteral("exportReportAction"));
  export_report_action_->setToolTip(tr("The project's runs, plots and sensitivity as HTML, "
                                       "Markdown, CSV or PDF"));
  export_model_action_ = file->addAction(tr("Export Compressed &Model…"), this,
                                         &MainWindow::exportModelDialog);
  export_model_action_->setObjectName(QStringLiteral("exportModelAction"));
  export_model_action_->setToolTip(tr("Compress the model again with the selected run's recipe "
                                      "and save it (Hugging Face directory, GGUF, or a compressed-tensors "
                                      "checkpoint for vLLM)"));
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &MainWindow::close);

  QMenu* run = menuBar()->addMenu(tr("&Run"));
  evaluate_action_ = run->addAction(tr("&Evaluate Perplexity"), QKeySequence(Qt::Key_F5),
                                    this, [this] { context_->startEvaluate(); });
  evaluate_action_->setObjectName(QStringLiteral("evaluateAction"));
  evaluate_action_->setToolTip(tr("Perplexity of the project's model on its evaluation text "
                                  "(its tokenizer and the project's window, as runs measure it)"));
  run_all_action_ = run->addAction(tr("Run &All Recipes"), QKeySequence(tr("Shift+F5")), this,
                                   [this] { context_->startRunAll(); });
  run_all_action_->setObjectName(QStringLiteral("runAllAction"));
  run_all_action_->setToolTip(tr("Compress with every recipe of the project, evaluate and "
                                 "record each run"));
  run->addSeparator();
  // Process-wide (stored_matmul.h), so it holds for every job started after the change, and
  // it is kept in the settings like the theme.
  exact_activations_action_ = run->addAction(tr("E&xact Activations for Quantised Weights"));
  exact_activations_action_->setObjectName(QStringLiteral("exactActivationsAction"));
  exact_activations_action_->setCheckable(true);
  exact_activations_action_->setToolTip(
      tr("GGUF, GPTQ, AWQ, compressed-tensors and packed layers multiply f32 activations "
         "(exact, several times slower) instead of int8 ones (llama.cpp's way; each product "
         "off by at most sum|w|·dx/2)"));
  exact_activations_action_->setChecked(QSettings().value("engine/exactActivations").toBool());
  set_int8_activations(!exact_activations_action_->isChecked());
  connect(exact_activations_action_, &QAction::toggled, this, [](bool exact) {
    QSettings().setValue("engine/exactActivations", exact);
    set_int8_activations(!exact);
  });

  QMenu* view = menuBar()->addMenu(tr("&View"));
  for (QDockWidget* d : {start_dock_, project_dock_, jobs_dock_, runs_dock_, tradeoff_dock_,
                         recipe_dock_, sensitivity_dock_, diff_dock_})
    view->addAction(d->toggleViewAction());
  view->addSeparator();
  dark_action_ = view->addAction(tr("&Dark Theme"));
  dark_action_->setCheckable(true);
  dark_action_->setChecked(theme_ == Theme::Dark);
  connect(dark_action_, &QAction::toggled, this, [this](bool dark) {
    if ((theme_ == Theme::Dark) != dark) setTheme(dark ? Theme::Dark : Theme::Light);
  });

  QToolBar* tools = addToolBar(tr("Main"));
  tools->setObjectName(QStringLiteral("mainToolBar"));
  tools->addAction(tr("Open Project"), this, &MainWindow::openProjectDialog);
  tools->addAction(tr("Open Model"), this, &MainWindow::openModelDialog);
  tools->addAction(evaluate_action_);
  tools->addAction(run_all_action_);
}

void MainWindow::updateExportActions() {
  if (!export_report_action_) return;
  export_report_action_->setEnabled(context_->hasProject());
  const qint64 id = context_->selection().run_id;
  bool done = false;
  for (const ui::RunRow& r : context_->runs())
    if (r.id == id) done = r.status == QLatin1String("done");
  export_model_action_->setEnabled(context_->hasProject() && done);
}

void MainWindow::exportReportDialog() {
  if (!context_->hasProject()) return;
  if (context_->isDirty() || context_->projectFile().isEmpty()) {
    if (!save()) return;  // the report reads the saved project
  }
  const QString html = tr("HTML report (*.html)"), md = tr("Markdown (*.md)"),
                csv = tr("CSV tables (*.csv)"), pdf = tr("PDF (*.pdf)");
  QString filter = html;
  QString path = QFileDialog::getSaveFileName(
      this, tr("Export report"), context_->project().name + QStringLiteral("-report.html"),
      QStringList{html, pdf, md, csv}.join(QStringLiteral(";;")), &filter);
  if (path.isEmpty()) return;
  if (QFileInfo(path).suffix().isEmpty())
    path += filter == pdf ? ".pdf" : filter == md ? ".md" : filter == csv ? ".csv" : ".html";
  if (context_->startExportReport(path))
    statusBar()->showMessage(tr("Exporting the report to %1…").arg(path), 5000);
}

void MainWindow::exportModelDialog() {
  const qint64 id = context_->selection().run_id;
  QString recipe;
  for (const ui::RunRow& r : context_->runs())
    if (r.id == id) recipe = r.recipe;
  if (recipe.isEmpty()) return;
  if (context_->isDirty() && !save()) return;
  const QString hf = tr("Hugging Face directory (*)"), gguf = tr("GGUF file (*.gguf)"),
                ct = tr("compressed-tensors checkpoint for vLLM (*)");
  QString filter = hf;
  QString path = QFileDialog::getSaveFileName(
      this, tr("Export the compressed model of run %1").arg(id),
      QStringLiteral("%1-run%2").arg(recipe).arg(id), QStringList{hf, gguf, ct}.join(";;"), &filter,
      QFileDialog::DontConfirmOverwrite);
  if (path.isEmpty()) return;
  if (filter == gguf && !path.endsWith(QLatin1String(".gguf"), Qt::CaseInsensitive))
    path += QStringLiteral(".gguf");
  QString type = QStringLiteral("F32");
  if (filter == gguf) {
    // llama-quantize's file types; F32 keeps exactly the weights the run evaluated.
    QStringList types;
    for (const GgufFileType& t : gguf_file_types()) types << QString::fromUtf8(t.name.data(), qsizetype(t.name.size()));
    bool ok = false;
    type = QInputDialog::getItem(this, tr("GGUF file type"),
                                 tr("llama.cpp file type (F32: the run's weights exactly; "
                                    "Q4_K_M, Q8_0, ...: llama-quantize's mix):"),
                                 types, int(types.indexOf(QStringLiteral("F32"))), false, &ok);
    if (!ok) return;
  }
  QString calibration = QStringLiteral("gptq");
  const bool quantised = filter == gguf && type != QLatin1String("F32") &&
                         type != QLatin1String("F16") && type != QLatin1String("BF16");
  if (quantised && !context_->project().calibration_path.isEmpty()) {
    const QStringList choices{tr("GPTQ on the block grid (lowest error, slowest)"),
                              tr("importance matrix (as llama-quantize --imatrix)"),
                              tr("none (llama-quantize's plain encoders)")};
    bool ok = false;
    const QString choice = QInputDialog::getItem(
        this, tr("GGUF calibration"),
        tr("Blocks the run's codes do not fill are re-quantised with the project's "
           "calibration text by:"),
        choices, 0, false, &ok);
    if (!ok) return;
    calibration = QStringList{QStringLiteral("gptq"), QStringLiteral("imatrix"),
                              QStringLiteral("none")}[choices.indexOf(choice)];
  }
  if (context_->startExportModel(id, path, filter == ct, type, calibration))
    statusBar()->showMessage(tr("Exporting run %1 to %2…").arg(id).arg(path), 5000);
}

void MainWindow::rebuildRecentMenu() {
  recent_menu_->clear();
  const QStringList recent = context_->recentProjects();
  for (const QString& path : recent)
    recent_menu_->addAction(QFileInfo(path).fileName() + QStringLiteral("  (") +
                                QFileInfo(path).absolutePath() + QLatin1Char(')'),
                            this, [this, path] { openPath(path); });
  if (recent.isEmpty()) recent_menu_->addAction(tr("(none)"))->setEnabled(false);
}

bool MainWindow::confirmDiscard() {
  if (!context_->hasProject() || !context_->isDirty()) return true;
  const auto answer = QMessageBox::question(
      this, tr("Unsaved project"),
      tr("The project \"%1\" has unsaved changes. Save them?").arg(context_->project().name),
      QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel);
  if (answer == QMessageBox::Save) return save();
  return answer == QMessageBox::Discard;
}

void MainWindow::newProject() {
  if (!confirmDiscard()) return;
  bool ok = false;
  const QString name = QInputDialog::getText(this, tr("New project"), tr("Project name:"),
                                             QLineEdit::Normal, tr("untitled"), &ok);
  if (ok && !name.trimmed().isEmpty()) context_->newProject(name.trimmed());
}

void MainWindow::openProjectDialog() {
  const QString path = QFileDialog::getOpenFileName(this, tr("Open project"), QString(),
                                                    tr("MCW projects (*.mcwproj)"));
  if (!path.isEmpty()) openPath(path);
}

bool MainWindow::save() {
  if (!context_->hasProject()) return false;
  if (context_->projectFile().isEmpty()) return saveAs();
  const bool ok = context_->saveProject();
  statusBar()->showMessage(ok ? tr("Saved") : tr("Save failed (see the log)"), 5000);
  return ok;
}

bool MainWindow::saveAs() {
  if (!context_->hasProject()) return false;
  QString path = QFileDialog::getSaveFileName(this, tr("Save project as"),
                                              context_->project().name + ".mcwproj",
                                              tr("MCW projects (*.mcwproj)"));
  if (path.isEmpty()) return false;
  if (!path.endsWith(QLatin1String(".mcwproj"))) path += QLatin1String(".mcwproj");
  const bool ok = context_->saveProjectAs(path);
  statusBar()->showMessage(ok ? tr("Saved") : tr("Save failed (see the log)"), 5000);
  return ok;
}

void MainWindow::openModelDialog() {
  const QString path = QFileDialog::getOpenFileName(
      this, tr("Open model"), QString(),
      tr("Models (*.safetensors *.gguf *.bin);;All files (*)"));
  if (!path.isEmpty()) context_->openModel(path);
}

}  // namespace mcw::studio
