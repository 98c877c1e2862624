// A recipe with a recovery section, run from the studio: the Runs panel shows the run's
// recovery curve beside the table (the store's points, in step order) and hides it for a
// run without one; the trade-off plot marks where the run stood before recovery.
#include <QtTest>

#include "engine/project/project.h"
#include "engine/runs/run_store.h"
#include "studio_test_util.h"
#include "widgets/recovery_curve_view.h"
#include "widgets/runs_panel.h"
#include "widgets/tradeoff_panel.h"
#include "widgets/tradeoff_plot.h"

using namespace mcw;

class StudioRecoveryTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { test::use_test_settings(); }

  void recoveredRunShowsItsCurveAndWhereItStarted() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string file = test::make_test_project(dir.path().toStdString(), "rec");
    Project p = load_project(file);
    p.calibration_path = p.evaluation_path;  // recovery trains on the calibration text
    p.recipes.push_back({"w3-lora", "",
                         "stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 32\n"
                         "recovery: {steps: 6, rank: 2, batch: 2, window: 32, eval_every: 3}\n"});
    save_project(p, file);

    studio::MainWindow w;
    QVERIFY(w.context().openProject(QString::fromStdString(file)));
    QVERIFY(w.context().startRun(QStringLiteral("w3-lora")) > 0);
    QTRY_COMPARE_WITH_TIMEOUT(int(test::find_job(w.context(), "Run w3-lora").state),
                              int(ui::JobState::Succeeded), 120000);
    QTRY_VERIFY_WITH_TIMEOUT(
        !w.context().runHistory().isLoading() && w.context().runs().size() == 2, 10000);
    const ui::RunRow rec = w.context().runs()[0];
    const ui::RunRow base = w.context().runs()[1];
    QCOMPARE(rec.recipe, QStringLiteral("w3-lora"));
    QVERIFY(base.isBaseline());

    // The Runs panel: the curve of the selected run, as the store holds it.
    ui::RunsPanel* rp = w.runsPanel();
    ui::Selection s = w.context().selection();
    s.run_id = rec.id;
    w.context().setSelection(s);
    ui::RecoveryCurveView* curve = rp->curveView();
    QVERIFY(!curve->isHidden());
    const auto store = RunStore::open_existing(w.context().project().database_path.toStdString());
    QList<QPointF> kl, loss;
    for (const CurvePoint& c : store->load_curve(rec.id)) {
      if (c.series == "eval_kl") kl.push_back(QPointF(double(c.step), c.value));
      if (c.series == "loss") loss.push_back(QPointF(double(c.step), c.value));
    }
    QCOMPARE(kl.size(), 3);    // before step 1, after steps 3 and 6
    QCOMPARE(loss.size(), 6);  // every step
    QCOMPARE(curve->heldOutKl(), kl);
    QCOMPARE(curve->trainingLoss(), loss);
    s.run_id = base.id;  // the baseline has no curve
    w.context().setSelection(s);
    QVERIFY(curve->isHidden());

    // The trade-off plot (perplexity on y): the run's point knows where it stood before.
    ui::TradeoffPanel* tp = w.tradeoffPanel();
    QTRY_COMPARE(tp->pointCount(), 2);
    QCOMPARE(tp->yMetric(), QStringLiteral("perplexity"));
    bool found = false;
    for (const ui::PlotPoint& pt : tp->plot()->points()) {
      if (pt.id != rec.id) {
        QVERIFY(!pt.recovered);
        continue;
      }
      found = true;
      QVERIFY(pt.recovered);
      QCOMPARE(pt.before_y, rec.metric(QStringLiteral("perplexity_before_recovery")));
    }
    QVERIFY(found);
  }
};

QTEST_MAIN(StudioRecoveryTest)
#include "test_studio_recovery.moc"
