#include "app/studio/screenshot.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QPixmap>
#include <QTimer>
#include <cstdio>
#include <memory>

#include "app/studio/main_window.h"

namespace mcw::studio {

static bool model_settled(const ProjectContext& c) {
  const ui::ModelSummary& m = c.model();
  if (m.loading) return false;
  for (const ui::TensorRow& r : m.tensors)
    if (!r.stats.ready) return false;
  return true;
}

void schedule_screenshot(MainWindow& window, const ScreenshotOptions& options) {
  auto clock = std::make_shared<QElapsedTimer>();
  clock->start();
  auto evaluate_started = std::make_shared<bool>(false);
  auto* timer = new QTimer(&window);
  timer->setInterval(100);
  QObject::connect(timer, &QTimer::timeout, &window, [&window, options, clock, evaluate_started,
                                                       timer] {
    ProjectContext& c = window.context();
    const bool timed_out = clock->elapsed() > options.timeout_ms;
    if (!timed_out) {
      if (!model_settled(c) || c.bridge().runningCount() > 0) return;
      if (options.evaluate && !*evaluate_started) {
        *evaluate_started = true;
        if (c.startEvaluate()) return;
      }
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
