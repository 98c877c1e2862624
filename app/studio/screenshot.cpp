#include "app/studio/screenshot.h"

#include <QApplication>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QPixmap>
#include <QTimer>
#include <cstdio>
#include <memory>

#include "app/studio/main_window.h"
#include "widgets/bridge_types.h"

namespace mcw::studio {

static bool model_settled(const ProjectContext& c) {
  const ui::ModelSummary& m = c.model();
  if (m.loading) return false;
  for (const ui::TensorRow& r : m.tensors)
    if (!r.stats.ready) return false;
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

void schedule_screenshot(MainWindow& window, const ScreenshotOptions& options) {
  auto clock = std::make_shared<QElapsedTimer>();
  clock->start();
  // 0: waiting for the model; 1: evaluate started; 2: runs started; 3: shown, grab next.
  auto stage = std::make_shared<int>(0);
  auto* timer = new QTimer(&window);
  timer->setInterval(100);
  QObject::connect(timer, &QTimer::timeout, &window, [&window, options, clock, stage, timer] {
    ProjectContext& c = window.context();
    const bool timed_out = clock->elapsed() > options.timeout_ms;
    if (!timed_out && *stage < 3) {
      if (!model_settled(c) || c.bridge().runningCount() > 0 || c.runHistory().isLoading())
        return;
      if (*stage < 1 && options.evaluate) {
        *stage = 1;
        if (c.startEvaluate()) return;
      }
      if (*stage < 2 && options.run_all) {
        *stage = 2;
        if (c.startRunAll()) return;
      }
      if (options.run_all) show_runs(window);
      *stage = 3;  // let the raised docks lay out and paint before the grab
      return;
    }
    timer->stop();
    if (timed_out) std::fprintf(stderr, "mcw-studio: screenshot: timed out waiting for jobs\n");
    const bool ok = window.grab().save(options.output, "PNG");
    if (!ok)
      std::fprintf(stderr, "mcw-studio: cannot write %s\n", qPrintable(options.output));
    QApplication::exit(ok && !timed_out ? 0 : 1);
  });
  // Let the window show and lay out before the first check.
  QTimer::singleShot(300, timer, qOverload<>(&QTimer::start));
}

}  // namespace mcw::studio
