// The tensor inspector: its colour map and per-mode pixels; on a real tiny model, the
// heatmap of the selected tensor against tiles computed here from the tensor's values, the
// histogram against a count of them, and the ImGui picture (rendered by Vulkan on lavapipe,
// grabbed through QWidget::grab) reacting to the mode switch, the wheel and a drag. Without
// a Vulkan driver the inspector says so in text.
#include <QDockWidget>
#include <QImage>
#include <QSet>
#include <QtTest>
#include <cmath>

#include "engine/io/model_file.h"
#include "studio_test_util.h"
#include "widgets/tensor_inspector.h"

using namespace mcw;
using ui::TensorInspector;

namespace {

double luminance(uint32_t c) {
  return 0.2126 * (c & 0xff) + 0.7152 * ((c >> 8) & 0xff) + 0.0722 * ((c >> 16) & 0xff);
}

int distinct_colours(const QImage& img, const QRect& area) {
  QSet<QRgb> seen;
  for (int y = area.top(); y <= area.bottom(); y += 2)
    for (int x = area.left(); x <= area.right(); x += 2) seen.insert(img.pixel(x, y));
  return int(seen.size());
}

}  // namespace

class StudioInspectorTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { test::use_test_settings(); }

  void colourMapRisesAndPixelsFollowTheMode() {
    double last = -1;
    for (int i = 0; i <= 50; ++i) {
      const double l = luminance(ui::heatmap_color(float(i) / 50));
      QVERIFY2(l > last, qPrintable(QString("step %1: %2 after %3").arg(i).arg(l).arg(last)));
      last = l;
    }
    QCOMPARE(ui::heatmap_color(-1), ui::heatmap_color(0));
    QCOMPARE(ui::heatmap_color(NAN), ui::heatmap_color(0));
    QCOMPARE(ui::heatmap_color(7), ui::heatmap_color(1));
    QCOMPARE(ui::heatmap_color(0.3f) >> 24, 0xffu);  // opaque

    ui::TensorHeatmapData d;
    d.grid_h = 1, d.grid_w = 3;
    d.mean_abs = {0.5f, 1.0f, 2.0f};
    d.max_abs = {4.0f, 1.0f, 2.0f};
    d.zero_density = {0.0f, 0.5f, 1.0f};
    float top = 0;
    auto px = ui::heatmap_pixels(d, TensorInspector::Mode::MeanAbs, &top);
    QCOMPARE(top, 2.0f);
    QCOMPARE(px, (std::vector<uint32_t>{ui::heatmap_color(0.25f), ui::heatmap_color(0.5f),
                                        ui::heatmap_color(1.0f)}));
    px = ui::heatmap_pixels(d, TensorInspector::Mode::MaxAbs, &top);
    QCOMPARE(top, 4.0f);
    QCOMPARE(px[0], ui::heatmap_color(1.0f));
    px = ui::heatmap_pixels(d, TensorInspector::Mode::ZeroDensity, &top);
    QCOMPARE(top, 1.0f);  // a density's scale is always 0..1
    QCOMPARE(px[1], ui::heatmap_color(0.5f));
  }

  void selectedTensorIsComputedOffTheUiThreadAndDrawn() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string project = test::make_test_project(dir.path().toStdString(), "insp");
    studio::MainWindow w;
    w.resize(1400, 900);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    studio::ProjectContext& c = w.context();
    QVERIFY(c.openProject(QString::fromStdString(project)));
    QTRY_VERIFY_WITH_TIMEOUT(!c.model().loading && !c.model().tensors.isEmpty(), 15000);

    // The largest matrix, as the screenshot picks it.
    const ui::TensorRow* row = nullptr;
    for (const ui::TensorRow& r : c.model().tensors)
      if (r.shape.size() == 2 && (!row || r.params > row->params)) row = &r;
    QVERIFY(row);
    const QString name = row->name;
    w.show();  // the inspector computes only while it can be seen
    w.inspectorDock()->show();
    w.inspectorDock()->raise();
    ui::Selection s;
    s.layer = name;
    c.setSelection(s);
    TensorInspector* inspector = w.tensorInspector();
    QVERIFY(inspector);
    QTRY_VERIFY_WITH_TIMEOUT(inspector->data().name == name && !inspector->data().loading, 20000);
    const ui::TensorHeatmapData& d = inspector->data();
    QVERIFY2(d.error.isEmpty(), qPrintable(d.error));

    // Tiles worked out here from the tensor itself.
    const ModelFile model = open_model_file(c.model().path.toStdString());
    const Tensor* t = model.find(name.toStdString());
    QVERIFY(t);
    const std::vector<float> v = t->to_f32();
    const int64_t rows = t->dim(0), cols = t->dim(1);
    QCOMPARE(d.rows, rows);
    QCOMPARE(d.cols, cols);
    QCOMPARE(d.grid_h, int(std::min<int64_t>(TensorInspector::kGrid, rows)));
    QCOMPARE(d.grid_w, int(std::min<int64_t>(TensorInspector::kGrid, cols)));
    for (int i = 0; i < d.grid_h; ++i)
      for (int j = 0; j < d.grid_w; ++j) {
        double sum = 0, mx = 0, zeros = 0, n = 0;
        for (int64_t r = i * rows / d.grid_h; r < (i + 1) * rows / d.grid_h; ++r)
          for (int64_t col = j * cols / d.grid_w; col < (j + 1) * cols / d.grid_w; ++col) {
            const double x = v[size_t(r * cols + col)];
            sum += std::fabs(x), mx = std::max(mx, std::fabs(x)), zeros += x == 0, ++n;
          }
        const size_t k = size_t(i) * size_t(d.grid_w) + size_t(j);
        QVERIFY(n > 0);
        QVERIFY2(
            std::fabs(d.mean_abs[k] - sum / n) <= 1e-5 * (1 + sum / n),
            qPrintable(
                QString("tile %1,%2: %3 vs %4").arg(i).arg(j).arg(d.mean_abs[k]).arg(sum / n)));
        QCOMPARE(double(d.max_abs[k]), double(float(mx)));
        QCOMPARE(double(d.zero_density[k]), double(float(zeros / n)));
      }
    double counted = 0;
    for (float b : d.histogram) counted += b;
    QCOMPARE(counted, double(v.size()));
    QCOMPARE(d.hist_lo, double(*std::min_element(v.begin(), v.end())));
    QCOMPARE(d.hist_hi, double(*std::max_element(v.begin(), v.end())));

    if (!inspector->vulkanAvailable())
      QSKIP(qPrintable("Vulkan unavailable: " + inspector->unavailableReason()));
    // The heatmap is computed by Vulkan on a GPU, by the CPU kernel when the only device is
    // a software one (lavapipe): either way the tiles were checked above.
    QVERIFY2(d.backend.startsWith("Vulkan") || d.backend == "CPU", qPrintable(d.backend));
    w.inspectorDock()->show();
    w.inspectorDock()->raise();
    QApplication::processEvents();
    const QImage mean = inspector->grab().toImage();
    if (qEnvironmentVariableIsSet("MCW_INSPECTOR_PNG")) mean.save(qgetenv("MCW_INSPECTOR_PNG"));
    QVERIFY(!mean.isNull());
    // Heatmap, text, histogram: many colours, not a blank or one-colour picture.
    const int colours = distinct_colours(mean, mean.rect());
    QVERIFY2(colours > 50, qPrintable(QString("%1 colours").arg(colours)));

    inspector->setMode(TensorInspector::Mode::ZeroDensity);
    const QImage zero = inspector->grab().toImage();
    QVERIFY(zero != mean);
    inspector->setMode(TensorInspector::Mode::MeanAbs);

    // Wheel over the heatmap zooms in about the pointer; a drag pans.
    const QRectF map = inspector->heatmapRect();
    QVERIFY(!map.isEmpty());
    const QPoint centre = (map.topLeft() + QPointF(map.width() * 0.4, map.height() * 0.4)).toPoint();
    QMouseEvent move(QEvent::MouseMove, centre, inspector->mapToGlobal(centre), Qt::NoButton,
                     Qt::NoButton, Qt::NoModifier);
    QApplication::sendEvent(inspector, &move);
    QApplication::processEvents();
    inspector->grab();
    QWheelEvent wheel(centre, inspector->mapToGlobal(centre), QPoint(), QPoint(0, 480),
                      Qt::NoButton, Qt::NoModifier, Qt::NoScrollPhase, false);
    QApplication::sendEvent(inspector, &wheel);
    inspector->grab();
    QVERIFY2(inspector->zoom() > 2, qPrintable(QString::number(inspector->zoom())));
    const QPointF before = inspector->viewOrigin();
    QVERIFY(before.x() > 0 && before.y() > 0);  // zoomed about the pointer, not the corner
    QTest::mousePress(inspector, Qt::LeftButton, Qt::NoModifier, centre);
    for (int k = 1; k <= 3; ++k) {
      const QPoint p = centre + QPoint(3 * k, 5 * k);
      QMouseEvent drag(QEvent::MouseMove, p, inspector->mapToGlobal(p), Qt::NoButton,
                       Qt::LeftButton, Qt::NoModifier);
      QApplication::sendEvent(inspector, &drag);
      inspector->grab();
    }
    QTest::mouseRelease(inspector, Qt::LeftButton, Qt::NoModifier, centre + QPoint(9, 15));
    const QPointF after = inspector->viewOrigin();
    QVERIFY2(after.x() < before.x() && after.y() < before.y(),
             qPrintable(QString("(%1, %2) -> (%3, %4)")
                            .arg(before.x())
                            .arg(before.y())
                            .arg(after.x())
                            .arg(after.y())));
  }

  void withoutAVulkanDriverItSaysSo() {
    // The loader reads the driver list at each vkCreateInstance.
    qputenv("VK_DRIVER_FILES", "/nonexistent/mcw_icd.json");
    qputenv("VK_ICD_FILENAMES", "/nonexistent/mcw_icd.json");
    studio::ProjectContext c;
    TensorInspector inspector(c);
    qunsetenv("VK_DRIVER_FILES");
    qunsetenv("VK_ICD_FILENAMES");
    QVERIFY(!inspector.vulkanAvailable());
    QVERIFY(!inspector.unavailableReason().isEmpty());
    inspector.resize(400, 300);
    const QImage img = inspector.grab().toImage();  // text, no crash
    QVERIFY(!img.isNull());
    QVERIFY(distinct_colours(img, img.rect()) > 1);
  }
};

QTEST_MAIN(StudioInspectorTest)
#include "test_studio_inspector.moc"
