// The UI heartbeat: nearest-rank percentiles against their definition; the monitor beats
// only while a job runs, gives each job the beats since it started, and sees a UI thread
// that was blocked (a forced 80 ms block must show as a beat at least 70 ms late: a lower
// bound that load can only raise, not a speed claim).
#include <QtTest>
#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "app/studio/heartbeat.h"

using mcw::studio::HeartbeatMonitor;
using mcw::studio::HeartbeatStats;
using mcw::studio::percentile;

class StudioHeartbeatTest : public QObject {
  Q_OBJECT
 private slots:
  void percentileIsTheNearestRank() {
    QCOMPARE(percentile({}, 99), 0.0);
    QCOMPARE(percentile({5, 1, 3, 2, 4}, 50), 3.0);
    QCOMPARE(percentile({5, 1, 3, 2, 4}, 20), 1.0);
    QCOMPARE(percentile({5, 1, 3, 2, 4}, 21), 2.0);
    QCOMPARE(percentile({5, 1, 3, 2, 4}, 99), 5.0);
    QCOMPARE(percentile({5, 1, 3, 2, 4}, 100), 5.0);
    // Definition: the smallest value with at least p% of the values at or below it.
    std::mt19937 rng(3);
    std::vector<double> v(257);
    for (double& x : v) x = std::uniform_real_distribution<double>(0, 30)(rng);
    for (double p : {1.0, 50.0, 90.0, 99.0, 99.9}) {
      double want = 1e9;
      for (double x : v) {
        const auto at_or_below =
            std::count_if(v.begin(), v.end(), [&](double y) { return y <= x; });
        if (double(at_or_below) >= p / 100.0 * double(v.size())) want = std::min(want, x);
      }
      QCOMPARE(percentile(v, p), want);
    }
  }

  void beatsOnlyWhileJobsRunAndSeesABlock() {
    HeartbeatMonitor m(10);
    QVERIFY(!m.isBeating());
    QCOMPARE(m.jobFinished(42, "never started").ticks, 0);
    m.jobStarted(1);
    QVERIFY(m.isBeating());
    QTest::qWait(60);
    m.jobStarted(2);  // overlaps job 1
    QTest::qWait(60);
    std::this_thread::sleep_for(std::chrono::milliseconds(80));  // the UI thread blocked
    QTest::qWait(60);
    const HeartbeatStats two = m.jobFinished(2, "two");
    QVERIFY(m.isBeating());  // job 1 still runs
    QTest::qWait(40);
    const HeartbeatStats one = m.jobFinished(1, "one");
    QVERIFY(!m.isBeating());
    QVERIFY(two.ticks > 0);
    QVERIFY2(one.ticks > two.ticks, qPrintable(QString("%1 vs %2").arg(one.ticks).arg(two.ticks)));
    QCOMPARE(one.job, QStringLiteral("one"));
    QCOMPARE(one.interval_ms, 10.0);
    for (const HeartbeatStats& s : {one, two}) {
      QVERIFY2(s.worst_ms >= 70, qPrintable(s.describe()));
      QVERIFY(s.worst_ms >= s.p99_ms && s.p99_ms >= 0 && s.mean_ms <= s.worst_ms);
    }
    qInfo("%s", qPrintable(one.describe()));
    // A job that starts after the others ended beats again.
    m.jobStarted(3);
    QTest::qWait(30);
    const HeartbeatStats three = m.jobFinished(3, "three");
    QVERIFY(three.ticks > 0);
    QCOMPARE(m.totalTicks() > 0, true);
  }
};

QTEST_MAIN(StudioHeartbeatTest)
#include "test_studio_heartbeat.moc"
