// The sensitivity heatmap: colours rise monotonically (in luminance) with KL on a log
// scale whose legend spans the measured cells; hover text names layer, setting, KL and
// perplexity; pending cells are drawn differently from measured ones. The panel reads a
// real cached scan from the project's run store in model order, takes cells one at a time
// through the context, and offers Scan once a project with a model is open.
#include <QImage>
#include <QLabel>
#include <QPushButton>
#include <QtTest>
#include <cmath>

#include "engine/io/model_file.h"
#include "engine/model/llama_model.h"
#include "studio_test_util.h"
#include "widgets/heatmap_view.h"
#include "widgets/sensitivity_panel.h"

using namespace mcw;
using ui::HeatmapView;

namespace {
double luminance(const QColor& c) {
  return 0.2126 * c.red() + 0.7152 * c.green() + 0.0722 * c.blue();
}
}  // namespace

class StudioHeatmapTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { test::use_test_settings(); }

  void colourRisesWithKlOnTheLegendRange() {
    HeatmapView v;
    v.setAxes({"model.layers.0.self_attn.q_proj.weight", "b", "c"}, {"w4", "w2"});
    QCOMPARE(v.legendRange(), qMakePair(0.0, 0.0));  // nothing measured
    v.setCell(0, 0, 1e-4, 10.5);
    // One value: a unit-wide range around it.
    QCOMPARE(v.legendRange(), qMakePair(-4.5, -3.5));
    v.setCell(1, 1, 1e-2);
    v.setCell(2, 0, 1.0, 30.0);
    const auto [lo, hi] = v.legendRange();
    QVERIFY(std::abs(lo - -4) < 1e-12 && std::abs(hi - 0) < 1e-12);
    QCOMPARE(v.colorFor(1e-4), HeatmapView::rampColor(0));
    QCOMPARE(v.colorFor(1.0), HeatmapView::rampColor(1));
    QCOMPARE(v.colorFor(1e-2), HeatmapView::rampColor(0.5));  // log scale: the middle decade
    QCOMPARE(v.colorFor(1e-9), HeatmapView::rampColor(0));    // clamped below
    QCOMPARE(v.colorFor(0.0), HeatmapView::rampColor(0));     // KL 0 is drawn at the floor
    QCOMPARE(v.colorFor(50.0), HeatmapView::rampColor(1));    // and above
    double last = -1;
    for (int i = 0; i <= 40; ++i) {
      const double kl = std::pow(10.0, -4 + 4.0 * i / 40);
      const double l = luminance(v.colorFor(kl));
      QVERIFY2(l > last,
               qPrintable(QString("kl %1: luminance %2 after %3").arg(kl).arg(l).arg(last)));
      last = l;
    }
  }

  void hoverTextAndHitTesting() {
    HeatmapView v;
    v.setAxes({"model.layers.1.mlp.up_proj.weight", "x"}, {"rtn-w4", "rtn-w2"});
    v.setCell(0, 1, 0.0123, 12.3456);
    const QString t = v.hoverText(0, 1);
    QVERIFY2(t.contains("model.layers.1.mlp.up_proj.weight") && t.contains("rtn-w2") &&
                 t.contains("KL 0.0123") && t.contains("perplexity 12.346"),
             qPrintable(t));
    QVERIFY(v.hoverText(1, 0).contains("pending"));
    QVERIFY(v.hoverText(5, 0).isEmpty());
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 2; ++c) QCOMPARE(v.cellAt(v.cellRect(r, c).center()), QPoint(c, r));
    QCOMPARE(v.cellAt(QPoint(0, 0)), QPoint(-1, -1));
  }

  void paintsMeasuredCellsInTheirColourAndPendingOnesHatched() {
    HeatmapView v;
    v.setAxes({"a", "b"}, {"s1", "s2"});
    v.setCell(0, 0, 1e-3);
    v.setCell(1, 1, 1e-1);
    v.resize(v.sizeHint());
    const QImage img = v.grab().toImage();
    const qreal dpr = img.devicePixelRatio();
    auto pixel = [&](int r, int c, int dx = 0) {
      const QPoint p = v.cellRect(r, c).center() + QPoint(dx, 0);
      return QColor(img.pixel(int(p.x() * dpr), int(p.y() * dpr)));
    };
    QCOMPARE(pixel(0, 0), v.colorFor(1e-3));
    QCOMPARE(pixel(1, 1), v.colorFor(1e-1));
    // A hatched pending cell is not one flat colour across a few pixels.
    QSet<QRgb> seen;
    for (int dx = -6; dx <= 6; ++dx) seen.insert(pixel(0, 1, dx).rgb());
    QVERIFY(seen.size() > 1);
  }

  void panelReadsTheCachedScanAndTakesLiveCells() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    test::TestProjectOptions o;
    o.text_bytes = 600;
    const std::string project = test::make_test_project(dir.path().toStdString(), "scan", o);
    const int written = test::write_sensitivity_cache(project, {4, 2}, 300);
    QCOMPARE(written, 14 * 2 * 2);  // 14 linears × 2 settings × (kl, perplexity)

    studio::MainWindow w;
    QVERIFY(w.context().openProject(QString::fromStdString(project)));
    ui::SensitivityPanel* panel = w.sensitivityPanel();
    HeatmapView* map = panel->heatmap();
    QTRY_COMPARE_WITH_TIMEOUT(map->rowCount(), 14, 15000);
    QCOMPARE(map->columnCount(), 2);
    const ui::SensitivityGrid& g = w.context().sensitivity();
    QCOMPARE(g.settings, (QStringList{"rtn-w2", "rtn-w4"}));
    // Rows in the model's order: the linears as the loader lists them.
    const LlamaModel m = load_llama(w.context().model().path.toStdString());
    QStringList order;
    for (const auto& [n, t] : m.named_tensors())
      if (n.ends_with("_proj.weight")) order << QString::fromStdString(n);
    QCOMPARE(g.layers, order);
    for (int r = 0; r < 14; ++r)
      for (int c = 0; c < 2; ++c) {
        QVERIFY(map->hasValue(r, c));
        QVERIFY(g.at(r, c).value >= 0 && std::isfinite(g.at(r, c).perplexity));
      }
    // 2 bits hurt more than 4 on the whole model (a real scan, not made-up numbers).
    double kl2 = 0, kl4 = 0;
    for (int r = 0; r < 14; ++r) kl2 += g.at(r, 0).value, kl4 += g.at(r, 1).value;
    QVERIFY2(kl2 > kl4, qPrintable(QString("%1 vs %2").arg(kl2).arg(kl4)));
    QVERIFY(panel->statusLabel()->text().contains("28 of 28"));

    // A saved project with a llama model: the scan can run (test_studio_sensitivity runs it).
    QVERIFY(panel->scanButton()->isEnabled());
    QVERIFY(w.context().sensitivityScanAvailable());

    // Results arriving one at a time: a new setting re-lays out the grid, then cells of it
    // fill in where they belong.
    const std::string q0 = order[0].toStdString(), d1 = order[13].toStdString();
    w.context().addSensitivityResult({q0, "rtn-w3", "kl", 0.5});
    QCOMPARE(map->columnCount(), 3);
    QVERIFY(map->hasValue(0, 1));    // rtn-w3 sorts between w2 and w4
    QVERIFY(!map->hasValue(13, 1));  // pending
    QVERIFY(map->hoverText(13, 1).contains("pending"));
    w.context().addSensitivityResult({d1, "rtn-w3", "perplexity", 9.0});
    QVERIFY(!map->hasValue(13, 1));  // perplexity alone does not make it measured
    w.context().addSensitivityResult({d1, "rtn-w3", "kl", 0.25});
    QVERIFY(map->hasValue(13, 1));
    QVERIFY(map->hoverText(13, 1).contains("KL 0.25"));
    QVERIFY(map->hoverText(13, 1).contains("perplexity 9.000"));
  }
};

QTEST_MAIN(StudioHeatmapTest)
#include "test_studio_heatmap.moc"
