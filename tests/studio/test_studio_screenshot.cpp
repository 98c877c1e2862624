// The screenshot mode writes a PNG of the whole window once the model's statistics and
// the evaluation are done, and the picture has real content (not one flat colour). With
// runs: PNGs of the window with the Runs and Trade-off panels showing real runs, in both
// themes, kept in <build>/tests/studio/screenshots/ for people to look at.
#include <QDir>
#include <QDockWidget>
#include <QImage>
#include <QSet>
#include <QtTest>

#include "app/studio/screenshot.h"
#include "studio_test_util.h"
#include "widgets/run_table_model.h"
#include "widgets/runs_panel.h"
#include "widgets/tradeoff_panel.h"

using namespace mcw;

namespace {

int colour_count(const QImage& img) {
  QSet<QRgb> colours;
  for (int y = 0; y < img.height(); y += 3)
    for (int x = 0; x < img.width(); x += 3) colours.insert(img.pixel(x, y));
  return int(colours.size());
}

// Pixels close to `c`: the plot's markers of that colour were painted.
int pixels_near(const QImage& img, QColor c) {
  int n = 0;
  for (int y = 0; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) {
      const QColor p = img.pixelColor(x, y);
      if (std::abs(p.red() - c.red()) + std::abs(p.green() - c.green()) +
              std::abs(p.blue() - c.blue()) < 40)
        ++n;
    }
  return n;
}

}  // namespace

class StudioScreenshotTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { test::use_test_settings(); }

  void screenshotHasContent() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    test::TestProjectOptions o;
    o.max_tokens = 2000;
    const QString project =
        QString::fromStdString(test::make_test_project(dir.path().toStdString(), "shot", o));
    const QString png = dir.path() + "/shot.png";
    studio::MainWindow w;
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    w.openPath(project);
    studio::schedule_screenshot(w, {png, true, 30000, {}});
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(png), 40000);
    QVERIFY(test::log_contains(w.context(), "perplexity"));
    const QImage img(png);
    QVERIFY(!img.isNull());
    QCOMPARE(img.size(), w.size() * w.devicePixelRatio());
    QVERIFY2(colour_count(img) > 50, qPrintable(QString::number(colour_count(img))));
  }

  void runsScreenshotsShowRealRuns_data() {
    QTest::addColumn<int>("theme");
    QTest::newRow("light") << int(studio::Theme::Light);
    QTest::newRow("dark") << int(studio::Theme::Dark);
  }

  void runsScreenshotsShowRealRuns() {
    QFETCH(int, theme);
    const QString key = studio::theme_key(studio::Theme(theme));
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    test::TestProjectOptions o;
    o.max_tokens = 2000;
    const QString project =
        QString::fromStdString(test::make_test_project(dir.path().toStdString(), "runs", o));
    const QString out = QCoreApplication::applicationDirPath() + QStringLiteral("/screenshots");
    QVERIFY(QDir().mkpath(out));
    const QString png = out + QStringLiteral("/studio_runs_%1.png").arg(key);
    QFile::remove(png);

    studio::MainWindow w;
    w.setTheme(studio::Theme(theme));
    w.resize(1600, 960);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    w.openPath(project);
    studio::ScreenshotOptions opt;
    opt.output = png;
    opt.run_all = true;
    opt.timeout_ms = 150000;
    studio::schedule_screenshot(w, opt);
    QTRY_VERIFY_WITH_TIMEOUT(QFileInfo::exists(png), 170000);
    QCOMPARE(int(test::find_job(w.context(), "Run all recipes").state),
             int(ui::JobState::Succeeded));
    QCOMPARE(w.runsPanel()->runModel()->rowCount(), 5);
    QCOMPARE(w.tradeoffPanel()->pointCount(), 5);
    QVERIFY(w.runsDock()->isVisible() && w.tradeoffDock()->isVisible());

    const QImage img(png);
    QVERIFY(!img.isNull());
    QVERIFY(img.width() >= 1000 && img.height() >= 600);
    QVERIFY2(colour_count(img) > 50, qPrintable(QString::number(colour_count(img))));

    // Each panel on its own, for a closer look; the plot has its markers painted.
    const QImage plot = w.tradeoffPanel()->grab().toImage();
    QVERIFY(plot.save(out + QStringLiteral("/tradeoff_%1.png").arg(key)));
    QVERIFY(colour_count(plot) > 30);
    QVERIFY2(pixels_near(plot, QColor(232, 135, 30)) > 50, "no Pareto-front markers painted");
    QVERIFY2(pixels_near(plot, QColor(64, 128, 214)) > 0 ||
                 pixels_near(plot, QColor(232, 135, 30)) > 200,
             "no run markers painted");
    const QImage runs = w.runsPanel()->grab().toImage();
    QVERIFY(runs.save(out + QStringLiteral("/runs_%1.png").arg(key)));
    QVERIFY(colour_count(runs) > 20);
    // The comparison of the two newest runs.
    const QList<ui::RunRow> all = w.context().runs();
    w.runsPanel()->compare(all[1].id, all[0].id);
    QVERIFY(w.runsPanel()->compareView());
    const QImage cmp = w.runsPanel()->compareView()->grab().toImage();
    QVERIFY(cmp.save(out + QStringLiteral("/compare_%1.png").arg(key)));
    QVERIFY(colour_count(cmp) > 20);
    w.runsPanel()->compareView()->close();
    w.setTheme(studio::Theme::Light);
  }
};

QTEST_MAIN(StudioScreenshotTest)
#include "test_studio_screenshot.moc"
