#include "app/studio/screenshot.h"

#include <QApplication>
#include <QComboBox>
#include <QDir>
#include <QFileInfo>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QPixmap>
#include <QPushButton>
#include <QSet>
#include <QTimer>
#include <cstdio>
#include <memory>

#include "app/studio/main_window.h"
#include "widgets/bridge_types.h"
#include "widgets/model_panel.h"
#include "widgets/recipe_editor_panel.h"
#include "widgets/sensitivity_panel.h"
#include "widgets/tradeoff_panel.h"

namespace mcw::studio {

static bool model_settled(const ProjectContext& c) {
  const ui::ModelSummary& m = c.model();
  if (m.loading) return false;
  for (const ui::TensorRow& r : m.tensors)
    if (!r.stats.ready) return false;
  return true;
}

static int preset_index(const ui::RecipeEditorPanel& editor, bool in_project, const QString& name) {
  const QList<ui::RecipePreset>& presets = editor.presets();
  for (int i = 0; i < presets.size(); ++i)
    if (presets[i].in_project == in_project && (name.isEmpty() || presets[i].name == name)) return i;
  return -1;
}

// Layout requests cascade (a form's new rows, then its scroll area): let them all land.
static void settle() {
  for (int i = 0; i < 4; ++i) {
    QCoreApplication::sendPostedEvents();
    QApplication::processEvents();
  }
}

// Saves a picture, refusing a tiny or blank one (a panel that did not draw): the screenshot
// tests fail on it rather than keep an empty PNG.
static bool save_checked(const QImage& image, const QString& path) {
  QSet<QRgb> colours;
  for (int y = 0; y < image.height() && colours.size() < 8; y += 3)
    for (int x = 0; x < image.width() && colours.size() < 8; x += 3) colours.insert(image.pixel(x, y));
  if (image.width() < 64 || image.height() < 48 || colours.size() < 8) {
    std::fprintf(stderr, "mcw-studio: %s: the picture is %dx%d with %d colours: blank or tiny\n",
                 qPrintable(path), image.width(), image.height(), int(colours.size()));
    image.save(path, "PNG");  // kept to look at
    return false;
  }
  // Like --panel-shots' folder, a missing parent folder is made.
  const QString parent = QFileInfo(path).absolutePath();
  const bool ok = QDir().mkpath(parent) && image.save(path, "PNG");
  if (!ok) std::fprintf(stderr, "mcw-studio: cannot write %s\n", qPrintable(path));
  return ok;
}

static bool grab_dock(QDockWidget* dock, const QString& path) {
  dock->raise();
  settle();
  return save_checked(dock->grab().toImage(), path);
}

// The Model panel, with the first compressed layer selected when a packed export lies
// beside the model (its details then show beneath the table).
static bool save_model_shot(MainWindow& window, const QString& path) {
  ProjectContext& c = window.context();
  for (const ui::TensorRow& r : c.model().tensors)
    if (r.packed >= 0) {
      ui::Selection s = c.selection();
      s.layer = r.name;
      c.setSelection(s);
      break;
    }
  settle();
  return save_checked(window.modelPanel()->grab().toImage(), path);
}

// The tensor inspector on the model's largest matrix, once its heatmap has arrived.
static bool save_inspector_shot(MainWindow& window, const QString& path) {
  ProjectContext& c = window.context();
  const ui::TensorRow* best = nullptr;
  for (const ui::TensorRow& r : c.model().tensors)
    if (r.shape.size() == 2 && (!best || r.params > best->params)) best = &r;
  if (!best) return true;  // nothing to inspect
  ui::Selection s = c.selection();
  s.layer = best->name;
  c.setSelection(s);
  window.inspectorDock()->show();
  window.inspectorDock()->raise();
  QElapsedTimer clock;
  clock.start();
  while (c.tensorHeatmap().loading && clock.elapsed() < 20000) {
    QApplication::processEvents(QEventLoop::AllEvents, 50);
  }
  if (!c.tensorHeatmap().error.isEmpty())
    std::fprintf(stderr, "mcw-studio: inspector: %s\n", qPrintable(c.tensorHeatmap().error));
  return grab_dock(window.inspectorDock(), path);
}

// The single-panel pictures: the model panel, the recipe editor with a preset and with the
// project's first recipe, the sensitivity heatmap, and the tensor inspector.
static bool save_panel_shots(MainWindow& window, const QString& dir) {
  if (!QDir().mkpath(dir)) {
    std::fprintf(stderr, "mcw-studio: cannot create the folder %s\n", qPrintable(dir));
    return false;
  }
  ui::RecipeEditorPanel* editor = window.recipeEditor();
  bool ok = save_model_shot(window, dir + QStringLiteral("/model.png"));
  const int project_recipe = preset_index(*editor, true, {});
  if (project_recipe >= 0) {
    editor->loadPreset(project_recipe);
    ok = grab_dock(window.recipeDock(), dir + QStringLiteral("/recipe_editor_error.png")) && ok;
  }
  int preset = preset_index(*editor, false, QStringLiteral("w4g128-gptq"));
  if (preset < 0) preset = preset_index(*editor, false, {});
  editor->loadPreset(preset);
  ok = grab_dock(window.recipeDock(), dir + QStringLiteral("/recipe_editor.png")) && ok;
  ok = grab_dock(window.sensitivityDock(), dir + QStringLiteral("/sensitivity.png")) && ok;
  ok = save_inspector_shot(window, dir + QStringLiteral("/inspector.png")) && ok;
  window.recipeDock()->raise();
  return ok;
}

// What-if editing from a project recipe, its point on bits per weight and KL.
static bool start_what_if(MainWindow& window, const QString& recipe) {
  ProjectContext& c = window.context();
  window.sensitivityDock()->show();
  window.tradeoffDock()->show();
  ui::SensitivityPanel* panel = window.sensitivityPanel();
  if (!panel->whatIfButton()->isChecked()) panel->whatIfButton()->click();
  if (!c.assignFromRecipe(recipe)) {
    std::fprintf(stderr, "mcw-studio: --what-if %s: see the log\n", qPrintable(recipe));
    return false;
  }
  ui::TradeoffPanel* t = window.tradeoffPanel();
  t->xAxisBox()->setCurrentIndex(t->xAxisBox()->findData(QStringLiteral("bits_per_weight")));
  t->yAxisBox()->setCurrentIndex(t->yAxisBox()->findData(QStringLiteral("kl")));
  return true;
}

// Shows the runs: the Runs tab in front and the newest finished run selected.
static void show_runs(MainWindow& window) {
  ProjectContext& c = window.context();
  window.runsDock()->show();
  window.tradeoffDock()->show();
  window.runsDock()->raise();
  for (const ui::RunRow& r : c.runs())
    if (r.status == QLatin1String("done") && !r.isBaseline()) {
      ui::Selection s = c.selection();
      s.run_id = r.id;
      c.setSelection(s);
      break;
    }
}

// What the heartbeat saw while the scan ran, for the docs (stdout, one line each).
static void print_scan_figures(ProjectContext& c, int scan_job) {
  const HeartbeatStats s = c.heartbeatStats(scan_job);
  const ScanSummary scan = c.lastSensitivityScan();
  std::printf("sensitivity scan: %d cells, %d cached, %d measured\n", scan.cells, scan.cached,
              scan.computed);
  std::printf("UI heartbeat during the scan: %d beats of %.0f ms, lateness worst %.2f ms, "
              "p99 %.2f ms, mean %.2f ms\n",
              s.ticks, s.interval_ms, s.worst_ms, s.p99_ms, s.mean_ms);
  std::fflush(stdout);
}

void schedule_screenshot(MainWindow& window, const ScreenshotOptions& options) {
  auto clock = std::make_shared<QElapsedTimer>();
  clock->start();
  // Steps in order, each once: evaluate, run all, scan, report; then show and grab.
  enum Step { kWait, kEvaluate, kRunAll, kScan, kWhatIf, kDiff, kReport, kShown };
  auto stage = std::make_shared<int>(kWait);
  auto scan_job = std::make_shared<int>(0);
  auto failed = std::make_shared<bool>(false);
  auto* timer = new QTimer(&window);
  timer->setInterval(100);
  QObject::connect(timer, &QTimer::timeout, &window, [&window, options, clock, stage, scan_job,
                                                      failed, timer] {
    ProjectContext& c = window.context();
    const bool timed_out = clock->elapsed() > options.timeout_ms;
    if (!timed_out && *stage < kShown) {
      if (!model_settled(c) || c.bridge().runningCount() > 0 || c.runHistory().isLoading())
        return;
      if (*stage < kEvaluate && options.evaluate) {
        *stage = kEvaluate;
        if (c.startEvaluate()) return;
      }
      if (*stage < kRunAll && options.run_all) {
        *stage = kRunAll;
        if (c.startRunAll()) return;
      }
      if (*stage < kScan && options.scan) {
        *stage = kScan;
        window.sensitivityDock()->show();
        window.sensitivityDock()->raise();
        if ((*scan_job = c.startSensitivityScan())) return;
      }
      if (*scan_job > 0) {
        print_scan_figures(c, *scan_job);
        *scan_job = -1;
      }
      if (*stage < kWhatIf && !options.what_if.isEmpty()) {
        *stage = kWhatIf;
        if (!start_what_if(window, options.what_if)) *failed = true;
      }
      if (*stage < kDiff && !options.compare_with.isEmpty()) {
        *stage = kDiff;
        if (c.startModelDiff(options.compare_with)) return;
      }
      if (*stage < kReport && !options.report.isEmpty()) {
        *stage = kReport;
        if (c.startExportReport(options.report)) return;
      }
      if (options.run_all || !c.runs().isEmpty()) show_runs(window);  // the picture shows them
      if (options.scan || !options.what_if.isEmpty()) window.sensitivityDock()->raise();
      if (!options.what_if.isEmpty()) window.tradeoffDock()->raise();
      if (!options.compare_with.isEmpty()) {
        window.modelDiffDock()->show();
        window.modelDiffDock()->raise();
      }
      *stage = kShown;  // let the raised docks lay out and paint before the grab
      return;
    }
    timer->stop();
    if (timed_out) std::fprintf(stderr, "mcw-studio: screenshot: timed out waiting for jobs\n");
    bool ok = !timed_out && !*failed;
    for (const ui::JobProgress& j : c.jobs())
      if (j.state == ui::JobState::Failed) {
        std::fprintf(stderr, "mcw-studio: %s failed: %s\n", qPrintable(j.name),
                     qPrintable(j.message));
        // What was asked for on the command line must have worked.
        if (j.name == QLatin1String("Sensitivity scan") || j.name == QLatin1String("Export report") ||
            j.name == QLatin1String("Model diff"))
          ok = false;
      }
    if (const int i = preset_index(*window.recipeEditor(), false, QStringLiteral("w4g128-gptq"));
        i >= 0)
      window.recipeEditor()->loadPreset(i);  // the window's picture shows a recipe
    settle();
    if (!save_checked(window.grab().toImage(), options.output)) ok = false;
    if (!options.panels_dir.isEmpty()) ok = save_panel_shots(window, options.panels_dir) && ok;
    if (!options.panels_dir.isEmpty() && !options.what_if.isEmpty())
      ok = grab_dock(window.tradeoffDock(), options.panels_dir + QStringLiteral("/tradeoff.png")) &&
           ok;
    if (!options.panels_dir.isEmpty() && !options.compare_with.isEmpty())
      ok = grab_dock(window.modelDiffDock(), options.panels_dir + QStringLiteral("/model_diff.png")) &&
           ok;
    QApplication::exit(ok ? 0 : 1);
  });
  // Let the window show and lay out before the first check.
  QTimer::singleShot(300, timer, qOverload<>(&QTimer::start));
}

}  // namespace mcw::studio
