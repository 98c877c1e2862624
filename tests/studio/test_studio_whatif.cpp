// What-if editing in the Sensitivity panel (issue 19): clicks, drags and keys
// on the heatmap set each layer's setting; every change is predicted at once,
// equal to the engine's prediction over the same scan (a single-layer change is
// that cell's KL); undo and redo step through the edits; "Start from" loads a
// recipe's assignment; the trade-off plot draws the predicted point; "Run this"
// adds the assignment as a recipe and runs it, and the run records the
// prediction beside what it measured (size exactly).
#include <QComboBox>
#include <QLabel>
#include <QPushButton>
#include <QtTest>

#include "app/studio/assignment_data.h"
#include "engine/runs/project_runner.h"
#include "engine/runs/run_store.h"
#include "engine/search/layer_latency.h"
#include "engine/search/recipe_prediction.h"
#include "engine/search/sensitivity_scan.h"
#include "studio_test_util.h"
#include "widgets/heatmap_view.h"
#include "widgets/sensitivity_panel.h"
#include "widgets/tradeoff_panel.h"
#include "widgets/tradeoff_plot.h"

using namespace mcw;

namespace {

constexpr int kRunTimeoutMs = 120000;

struct Scanned {
  SensitivityTable table;
  LayerLatencyTable latency;
};

// The engine's scan of the project's model into its store (KL, three settings) and a
// latency table of this machine's key (its layer times made up by a timer, the model's step
// measured), as `mcw predict --latency` would leave them.
Scanned scan_into_store(const std::string& project) {
  const ProjectRunInputs in = load_project_run_inputs(project);
  SensitivityOptions o;
  o.settings = {scan_setting_from_name("w8"), scan_setting_from_name("w4"),
                scan_setting_from_name("s50")};
  o.windows = 2;
  o.window = 32;
  const auto store = RunStore::open(in.database_path);
  Scanned s;
  s.table = SensitivityScan(in.base, in.fingerprint, in.evaluation_tokens, o).run(store.get());
  s.latency = measure_layer_latency(
      in.base, s.table, {"w8", "w4", "s50"}, in.evaluation_tokens, {}, {8, 4, 1},
      [](const CompressedTensor& w) { return double(w.bits + 1) / 100 + double(w.rows) * 1e-5; });
  store_layer_latency(*store, in.fingerprint, s.latency);
  return s;
}

QPoint centre(const ui::HeatmapView* h, int row, int col) { return h->cellRect(row, col).center(); }

bool find_done_run(const studio::ProjectContext& c, const QString& recipe, ui::RunRow* out) {
  for (const ui::RunRow& r : c.runs())
    if (r.recipe == recipe && r.status == QLatin1String("done")) {
      *out = r;
      return true;
    }
  return false;
}

}  // namespace

class StudioWhatIfTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { test::use_test_settings(); }
  void init() { QSettings().clear(); }

  void editPredictUndoStartFromAndRun() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string project = test::make_test_project(dir.path().toStdString(), "whatif");
    const Scanned scanned = scan_into_store(project);
    const SensitivityTable& t = scanned.table;
    studio::MainWindow w;
    studio::ProjectContext& c = w.context();
    ui::SensitivityPanel* panel = w.sensitivityPanel();
    ui::HeatmapView* h = panel->heatmap();
    QVERIFY(c.openProject(QString::fromStdString(project)));
    QTRY_VERIFY_WITH_TIMEOUT(h->hasValue(13, 2), 15000);
    QCOMPARE(c.assignment(), QList<int>(14, -1));
    QVERIFY(!c.assignmentPrediction().valid);
    // The grid's columns are in natural order: s50, w4, w8.
    QCOMPARE(c.sensitivity().settings, (QStringList{"s50", "w4", "w8"}));
    auto column = [&](const char* name) { return int(*t.setting_index(name)); };
    auto grid_col = [&](const char* name) { return int(c.sensitivity().settings.indexOf(name)); };

    // Out of what-if mode a click changes nothing.
    QTest::mouseClick(h, Qt::LeftButton, {}, centre(h, 0, 1));
    QCOMPARE(c.assignment(), QList<int>(14, -1));
    panel->whatIfButton()->click();
    QVERIFY(h->assigning());

    // One click: one layer at w4, predicted exactly as its cell.
    QTest::mouseClick(h, Qt::LeftButton, {}, centre(h, 0, grid_col("w4")));
    QCOMPARE(c.assignment()[0], grid_col("w4"));
    const ui::AssignmentPrediction& p = c.assignmentPrediction();
    QVERIFY2(p.valid, qPrintable(p.error));
    QCOMPARE(p.kl, t.at(0, size_t(column("w4"))).kl);
    QCOMPARE(p.compressed, 1);
    std::vector<int> engine_a(14, -1);
    engine_a[0] = column("w4");
    QCOMPARE(p.bits_per_weight, predict_assignment(t, engine_a).bits_per_weight);
    QVERIFY(panel->predictionLabel()->text().contains(QStringLiteral("bits/weight")));

    // A drag down the w8 column paints rows 2..6, the rows between included.
    QTest::mousePress(h, Qt::LeftButton, {}, centre(h, 2, grid_col("w8")));
    QTest::mouseMove(h, centre(h, 6, grid_col("w8")));
    QTest::mouseRelease(h, Qt::LeftButton, {}, centre(h, 6, grid_col("w8")));
    for (int r = 2; r <= 6; ++r) QCOMPARE(c.assignment()[r], grid_col("w8"));
    QCOMPARE(c.assignment()[1], -1);
    // Keys: the cursor is on row 6; K keeps it, 1 sets the first column (s50).
    QTest::keyClick(h, Qt::Key_K);
    QCOMPARE(c.assignment()[6], -1);
    QTest::keyClick(h, Qt::Key_Down);
    QTest::keyClick(h, Qt::Key_1);
    QCOMPARE(c.assignment()[7], grid_col("s50"));
    // Clicking a chosen cell again keeps its layer.
    QTest::mouseClick(h, Qt::LeftButton, {}, centre(h, 0, grid_col("w4")));
    QCOMPARE(c.assignment()[0], -1);

    // The prediction is the engine's over the same scan, whatever the grid's
    // column order.
    std::vector<int> mapped;
    for (int col : c.assignment())
      mapped.push_back(col < 0 ? -1 : column(qPrintable(c.sensitivity().settings[col])));
    const RecipePrediction ep = predict_assignment(t, mapped);
    QCOMPARE(c.assignmentPrediction().kl, ep.kl);
    QCOMPARE(c.assignmentPrediction().size_bytes, double(ep.storage_bits) / 8);
    // Latency from the store's table for this machine, as the engine predicts it from it.
    QCOMPARE(c.assignmentPrediction().latency_ms,
             predict_assignment(t, mapped, {}, &scanned.latency).latency_ms);

    // Undo steps back one edit at a time (the drag was one), redo forward.
    const QList<int> last = c.assignment();
    panel->undo();
    QCOMPARE(c.assignment()[0], grid_col("w4"));
    panel->undo(), panel->undo(), panel->undo();
    QCOMPARE(c.assignment()[2], -1);  // before the drag
    QCOMPARE(c.assignment()[0], grid_col("w4"));
    panel->redo(), panel->redo(), panel->redo(), panel->redo();
    QCOMPARE(c.assignment(), last);
    panel->keepAll();
    QVERIFY(!c.assignmentPrediction().valid);
    QVERIFY(!panel->runButton()->isEnabled());
    panel->undo();
    QCOMPARE(c.assignment(), last);

    // Start from a recipe: a mixed-precision recipe written from an assignment
    // reads back.
    std::vector<int> from(14, column("w4"));
    from[0] = column("w8"), from[13] = -1;
    Recipe mix = assignment_recipe(t, from, "mix");
    mix.prediction["budget_bits_per_weight"] = 6.5;  // as mcw search writes its budget
    QVERIFY(
        c.addRecipeToProject(QStringLiteral("mix"), QString::fromStdString(recipe_to_yaml(mix))));
    QComboBox* start = panel->startFromBox();
    const int item = start->findText(QStringLiteral("mix"));
    QVERIFY(item > 0);
    start->setCurrentIndex(item);
    emit start->activated(item);
    QCOMPARE(c.assignment()[0], grid_col("w8"));
    QCOMPARE(c.assignment()[1], grid_col("w4"));
    QCOMPARE(c.assignment()[13], -1);
    QVERIFY(panel->canUndo());

    // The trade-off plot draws the point on predicted axes and says why not on
    // others.
    ui::TradeoffPanel* tp = w.tradeoffPanel();
    tp->xAxisBox()->setCurrentIndex(tp->xAxisBox()->findData(QStringLiteral("bits_per_weight")));
    tp->yAxisBox()->setCurrentIndex(tp->yAxisBox()->findData(QStringLiteral("kl")));
    QVERIFY(tp->plot()->whatIf().shown);
    QCOMPARE(tp->plot()->whatIf().x, c.assignmentPrediction().bits_per_weight);
    QCOMPARE(tp->plot()->whatIf().y, c.assignmentPrediction().kl);
    QCOMPARE(tp->plot()->budgetLine(), 6.5);  // the search's budget, on its axis only
    tp->xAxisBox()->setCurrentIndex(
        tp->xAxisBox()->findData(QStringLiteral("latency_ms_per_token")));
    QVERIFY(tp->plot()->whatIf().shown);
    QCOMPARE(tp->plot()->whatIf().x, c.assignmentPrediction().latency_ms);
    QVERIFY(std::isnan(tp->plot()->budgetLine()));
    tp->yAxisBox()->setCurrentIndex(tp->yAxisBox()->findData(QStringLiteral("top1")));
    QVERIFY(!tp->plot()->whatIf().shown);
    QVERIFY(tp->whatIfNote()->text().contains(QStringLiteral("top-1")));

    // Run this: the recipe is added and run; the run records the prediction,
    // and its size is exactly the predicted one.
    const ui::AssignmentPrediction before = c.assignmentPrediction();
    const int job = panel->runAssignmentAs(QStringLiteral("whatif-1"));
    QVERIFY(job > 0);
    QTRY_VERIFY_WITH_TIMEOUT(
        test::find_job(c, QStringLiteral("Run whatif-1")).state == ui::JobState::Succeeded,
        kRunTimeoutMs);
    ui::RunRow run;
    QTRY_VERIFY_WITH_TIMEOUT(find_done_run(c, QStringLiteral("whatif-1"), &run), 15000);
    QCOMPARE(run.metric(QStringLiteral("predicted_kl")), before.kl);
    QCOMPARE(run.metric(QStringLiteral("predicted_bits_per_weight")), before.bits_per_weight);
    QCOMPARE(run.metric(QStringLiteral("bits_per_weight")), before.bits_per_weight);
    QVERIFY(run.metric(QStringLiteral("kl")) > 0);
  }

  // What cannot be predicted says why: pending or unsized cells, everything
  // kept, a grid row the model does not have; a label that names no setting
  // still predicts.
  void predictionsSayWhyNot() {
    ModelShape shape;
    shape.linears = {{"a", 4, 8}, {"b", 8, 4}};
    shape.other_params = 10;
    ui::SensitivityGrid g;
    g.layers = {"a", "b"};
    g.settings = {"w4", "mystery"};
    g.cells.resize(4);
    g.cells[0] = {true, 0.5, std::nan(""), 20};
    g.cells[1] = {true, 0.25, std::nan(""), 8};
    g.cells[2] = {true, 0.125, std::nan(""), 0};
    auto predict = [&](QList<int> a) { return studio::predict_grid_assignment(g, shape, a, {}); };
    QVERIFY(predict({-1, -1}).error.contains(QStringLiteral("kept")));
    QVERIFY(predict({-1, 1}).error.contains(QStringLiteral("not measured")));
    QVERIFY(predict({-1, 0}).error.contains(QStringLiteral("size")));
    QVERIFY(predict({0}).error.contains(QStringLiteral("no sensitivity")));
    const ui::AssignmentPrediction p = predict({1, -1});
    QVERIFY2(p.valid, qPrintable(p.error));
    QCOMPARE(p.kl, 0.25);
    QCOMPARE(p.size_bytes, (8 + 16 * 32 + 16 * 10) / 8.0);
    QCOMPARE(p.bits_per_weight, (8 + 16 * 32 + 16 * 10) / 74.0);
    shape.linears.pop_back();
    QVERIFY(predict({1, -1}).error.contains(QStringLiteral("no linear layer b")));
  }
};

QTEST_MAIN(StudioWhatIfTest)
#include "test_studio_whatif.moc"
