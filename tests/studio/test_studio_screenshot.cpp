// The screenshot mode writes a PNG of the whole window once the model's statistics and
// the evaluation are done, and the picture has real content (not one flat colour).
#include <QImage>
#include <QSet>
#include <QtTest>

#include "app/studio/screenshot.h"
#include "studio_test_util.h"

using namespace mcw;

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
    QSet<QRgb> colours;
    for (int y = 0; y < img.height(); y += 3)
      for (int x = 0; x < img.width(); x += 3) colours.insert(img.pixel(x, y));
    QVERIFY2(colours.size() > 50, qPrintable(QString::number(colours.size())));
  }
};

QTEST_MAIN(StudioScreenshotTest)
#include "test_studio_screenshot.moc"
