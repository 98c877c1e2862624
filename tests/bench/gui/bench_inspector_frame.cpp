// One frame of the tensor inspector, as the UI thread pays for it on every mouse move: the
// ImGui frame built, rendered by Vulkan into the offscreen image, read back and painted
// (QWidget::grab() runs that paint). Offscreen Qt; the Vulkan device is whatever the machine
// has (lavapipe here).
#include <benchmark/benchmark.h>

#include <QApplication>
#include <QDir>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QPixmap>
#include <QTemporaryDir>

#include "app/studio/main_window.h"
#include "app/studio/project_context.h"
#include "tests/studio/test_project_maker.h"
#include "widgets/tensor_inspector.h"

using namespace mcw;

static void BM_InspectorFrame(benchmark::State& state) {
  QTemporaryDir dir;
  const std::string project = test::make_test_project(dir.path().toStdString(), "bench");
  studio::MainWindow w;
  if (!w.context().openProject(QString::fromStdString(project))) {
    state.SkipWithError("cannot open the generated project");
    return;
  }
  QElapsedTimer clock;
  clock.start();
  while (w.context().model().tensors.isEmpty() && clock.elapsed() < 20000)
    QApplication::processEvents(QEventLoop::AllEvents, 20);
  const ui::TensorRow* best = nullptr;
  for (const ui::TensorRow& r : w.context().model().tensors)
    if (r.shape.size() == 2 && (!best || r.params > best->params)) best = &r;
  if (!best) {
    state.SkipWithError("no matrix in the model");
    return;
  }
  w.show();  // the inspector computes only while it can be seen
  w.inspectorDock()->show();
  w.inspectorDock()->raise();
  ui::Selection s = w.context().selection();
  s.layer = best->name;
  w.context().setSelection(s);
  while (!w.context().tensorHeatmap().ready() && clock.elapsed() < 20000)
    QApplication::processEvents(QEventLoop::AllEvents, 20);
  ui::TensorInspector* inspector = w.tensorInspector();
  if (!inspector->vulkanAvailable()) {
    state.SkipWithError(("Vulkan unavailable: " + inspector->unavailableReason()).toStdString().c_str());
    return;
  }
  const int side = int(state.range(0));
  inspector->resize(side, side);
  for (auto _ : state) benchmark::DoNotOptimize(inspector->grab());
  state.SetLabel(w.context().tensorHeatmap().backend.toStdString());
}
BENCHMARK(BM_InspectorFrame)->Arg(400)->Arg(800)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
