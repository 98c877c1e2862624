// Runs from the studio: a recipe run from the Project panel lands in the run store and
// shows as a row of the Runs table and a point of the trade-off plot (numbers checked
// against the store read directly, Pareto flags against a brute-force dominance check);
// a run cancelled from the Jobs panel ends cancelled in the job list and in the store;
// runs survive closing and reopening; clicking a plot point selects its run everywhere;
// the filters and the side-by-side comparison show what the store holds; a run that
// recorded a prediction shows it beside the measured figures in the table and the plot.
#include <QApplication>
#include <QComboBox>
#include <QDockWidget>
#include <QHelpEvent>
#include <QLineEdit>
#include <QMessageBox>
#include <QSignalSpy>
#include <QPushButton>
#include <QTableView>
#include <QTableWidget>
#include <QToolTip>
#include <QTreeWidget>
#include <QtTest>
#include <cmath>
#include <fstream>

#include "engine/project/project.h"
#include "engine/runs/run_store.h"
#include "studio_test_util.h"
#include "widgets/jobs_panel.h"
#include "widgets/project_panel.h"
#include "widgets/run_compare_view.h"
#include "widgets/run_table_model.h"
#include "widgets/runs_panel.h"
#include "widgets/tradeoff_panel.h"
#include "widgets/tradeoff_plot.h"

using namespace mcw;
using ui::RunTableModel;

namespace {

constexpr int kRunTimeoutMs = 120000;

int job_state(const studio::ProjectContext& c, const QString& name) {
  return int(test::find_job(c, name).state);
}

const ui::RunRow* find_run(const QList<ui::RunRow>& runs, const QString& recipe) {
  for (const ui::RunRow& r : runs)
    if (r.recipe == recipe) return &r;  // newest first
  return nullptr;
}

// The front by definition: no other point at least as small in both, smaller in one.
QSet<qint64> brute_force_front(const QList<ui::PlotPoint>& pts, bool maximize_y) {
  QSet<qint64> front;
  for (const ui::PlotPoint& a : pts) {
    const double ay = maximize_y ? -a.y : a.y;
    bool dominated = false;
    for (const ui::PlotPoint& b : pts) {
      const double by = maximize_y ? -b.y : b.y;
      if (b.x <= a.x && by <= ay && (b.x < a.x || by < ay)) dominated = true;
    }
    if (!dominated) front.insert(a.id);
  }
  return front;
}

// Where mcw run records a prediction of `metric` (mcw predict's keys, "predicted_" before).
QString predicted_name(const QString& metric) {
  return metric == QLatin1String("latency_ms_per_token") ? QStringLiteral("predicted_latency_ms")
                                                         : QStringLiteral("predicted_") + metric;
}

}  // namespace

// True once the UI's copy of the runs shows every run finished: the job's end and the
// background reload that brings the last metrics are separate events.
static bool all_runs_done(studio::ProjectContext& c, int n) {
  if (c.runHistory().isLoading()) return false;
  const QList<ui::RunRow> runs = c.runs();
  if (runs.size() != n) return false;
  for (const ui::RunRow& r : runs)
    if (r.status != QLatin1String("done")) return false;
  return true;
}

class StudioRunsTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() {
    test::use_test_settings();
    QVERIFY(dir_.isValid());
    project_ = QString::fromStdString(test::make_test_project(dir_.path().toStdString(), "tiny"));
  }
  void init() { QSettings().clear(); }

  // A damaged run store: the error is logged, the window asks (without blocking) whether
  // to start a fresh store, and starting one keeps the damaged file beside it.
  void damagedRunStoreIsOfferedAFreshStartAndKept() {
    QTemporaryDir dir;
    const QString project = QString::fromStdString(test::make_test_project(dir.path().toStdString(), "dmg"));
    const QString db = QString::fromStdString(
        default_database_path(project.toStdString(), "dmg"));
    std::string noise(8192, '\0');
    for (size_t i = 0; i < noise.size(); ++i) noise[i] = char(i * 131 + 7);
    { std::ofstream(db.toStdString(), std::ios::binary) << noise; }

    studio::MainWindow w;
    w.show();
    QSignalSpy offered(&w.context(), &studio::ProjectContext::damagedRunStore);
    QVERIFY(w.context().openProject(project));
    QTRY_COMPARE_WITH_TIMEOUT(offered.count(), 1, 15000);
    QCOMPARE(offered.at(0).at(0).toString(), db);
    QVERIFY(test::log_contains(w.context(), "not a database"));
    QMessageBox* box = nullptr;
    QTRY_VERIFY((box = w.findChild<QMessageBox*>(QStringLiteral("damagedRunStoreBox"))) != nullptr);
    QAbstractButton* fresh = nullptr;
    for (QAbstractButton* b : box->buttons())
      if (box->buttonRole(b) == QMessageBox::AcceptRole) fresh = b;
    QVERIFY(fresh);
    fresh->click();
    QVERIFY(test::log_contains(w.context(), "the damaged run store was kept as"));
    QVERIFY(!QFileInfo::exists(db));
    const QStringList kept = QDir(QFileInfo(db).absolutePath())
                                 .entryList({QFileInfo(db).fileName() + QStringLiteral(".damaged-*")});
    QCOMPARE(kept.size(), 1);
    // Runs go on in a fresh store at the same place.
    QVERIFY(w.context().startRun(QStringLiteral("rtn-w8")) > 0);
    QTRY_VERIFY_WITH_TIMEOUT(all_runs_done(w.context(), 2), kRunTimeoutMs);  // baseline + rtn-w8
    QVERIFY(QFileInfo::exists(db));
    QVERIFY(!run_store_is_damaged(db.toStdString()));
  }

  void runFromTheProjectPanelAddsARowAndAPoint() {
    studio::MainWindow w;
    QVERIFY(w.context().openProject(project_));
    QCOMPARE(w.runsPanel()->runModel()->rowCount(), 0);
    QCOMPARE(w.tradeoffPanel()->pointCount(), 0);
    QVERIFY(!QFileInfo::exists(w.context().project().database_path));  // opening creates none

    // Select the recipe in the Project panel and press Run.
    ui::ProjectPanel* pp = w.projectPanel();
    const auto items =
        pp->tree()->findItems(QStringLiteral("uniform-w4"), Qt::MatchExactly | Qt::MatchRecursive);
    QCOMPARE(items.size(), 1);
    QVERIFY(!pp->runButton()->isEnabled());
    pp->tree()->setCurrentItem(items[0]);
    QVERIFY(pp->runButton()->isEnabled());
    QTest::mouseClick(pp->runButton(), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(job_state(w.context(), "Run uniform-w4"),
                              int(ui::JobState::Succeeded), kRunTimeoutMs);
    // The baseline (the store had none) and the recipe, newest first.
    RunTableModel* model = w.runsPanel()->runModel();
    QTRY_COMPARE_WITH_TIMEOUT(model->rowCount(), 2, 10000);
    QTRY_COMPARE_WITH_TIMEOUT(w.tradeoffPanel()->pointCount(), 2, 10000);
    QCOMPARE(model->index(0, RunTableModel::Recipe).data(Qt::UserRole).toString(),
             QStringLiteral("uniform-w4"));
    QCOMPARE(model->index(1, RunTableModel::Recipe).data(Qt::UserRole).toString(),
             QStringLiteral("baseline"));

    // What the table shows is what the store holds, read here through its own connection.
    const auto store = RunStore::open_existing(w.context().project().database_path.toStdString());
    const std::vector<RunRecord> stored = store->load_runs_with_metrics();
    QCOMPARE(int(stored.size()), 2);
    for (int row = 0; row < 2; ++row) {
      const RunRecord& r = stored[size_t(row)];
      QCOMPARE(model->index(row, RunTableModel::Id).data(Qt::UserRole).toLongLong(), r.info.id);
      QCOMPARE(model->index(row, RunTableModel::Status).data().toString(), QStringLiteral("done"));
      for (int c : {int(RunTableModel::Perplexity), int(RunTableModel::KL),
                    int(RunTableModel::Top1), int(RunTableModel::BitsPerWeight),
                    int(RunTableModel::Size), int(RunTableModel::Latency)}) {
        const std::optional<double> v = r.metric(RunTableModel::metricOf(c).toStdString());
        QVERIFY2(v, qPrintable(RunTableModel::metricOf(c)));
        QCOMPARE(model->index(row, c).data(Qt::UserRole).toDouble(), *v);
      }
    }
    // 4-bit weights plus group scales: more than 4 bits per weight, fewer than the baseline's
    // 16; a lossy model has KL > 0, the baseline (the reference itself) exactly 0.
    const double bits = model->index(0, RunTableModel::BitsPerWeight).data(Qt::UserRole).toDouble();
    QVERIFY2(bits > 4 && bits < 16, qPrintable(QString::number(bits)));
    QVERIFY(model->index(0, RunTableModel::KL).data(Qt::UserRole).toDouble() > 0);
    QCOMPARE(model->index(1, RunTableModel::KL).data(Qt::UserRole).toDouble(), 0.0);

    // Plot points: one per done run at (latency, perplexity), front checked by definition.
    ui::TradeoffPlot* plot = w.tradeoffPanel()->plot();
    for (const ui::PlotPoint& p : plot->points()) {
      const RunRecord& r = p.id == stored[0].info.id ? stored[0] : stored[1];
      QCOMPARE(p.x, *r.metric("latency_ms_per_token"));
      QCOMPARE(p.y, *r.metric("perplexity"));
      QCOMPARE(p.size, *r.metric("size_bytes"));
      QCOMPARE(p.baseline, r.info.recipe_name == "baseline");
    }
    QSet<qint64> shown_front;
    for (const ui::PlotPoint& p : plot->points())
      if (p.front) shown_front.insert(p.id);
    QCOMPARE(shown_front, brute_force_front(plot->points(), false));
    // The Project panel lists them too.
    QTRY_VERIFY(!pp->tree()
                     ->findItems(QStringLiteral("#%1 uniform-w4").arg(stored[0].info.id),
                                 Qt::MatchExactly | Qt::MatchRecursive)
                     .isEmpty());
  }

  void runAllFillsThePlotAndAxesSwitch() {
    const QString path = QString::fromStdString(
        test::make_test_project((dir_.path() + "/all").toStdString(), "all"));
    studio::MainWindow w;
    QVERIFY(w.context().openProject(path));
    w.runAllAction()->trigger();
    QTRY_COMPARE_WITH_TIMEOUT(job_state(w.context(), "Run all recipes"),
                              int(ui::JobState::Succeeded), kRunTimeoutMs);
    QTRY_COMPARE_WITH_TIMEOUT(w.runsPanel()->runModel()->rowCount(), 5, 10000);  // + baseline
    QTRY_VERIFY_WITH_TIMEOUT(all_runs_done(w.context(), 5), 10000);
    ui::TradeoffPanel* tp = w.tradeoffPanel();
    QTRY_COMPARE(tp->pointCount(), 5);

    // uniform-w4's run as if its recipe had been written by mcw predict --add: the predicted
    // figures stored beside the measured ones (what mcw run records), off by a known amount;
    // no latency prediction (mcw predict without --latency).
    const ui::RunRow w4 = *find_run(w.context().runs(), QStringLiteral("uniform-w4"));
    const double kl = w4.metric(QStringLiteral("kl")),
                 ppl = w4.metric(QStringLiteral("perplexity"));
    const double bits = w4.metric(QStringLiteral("bits_per_weight"));
    const double size = w4.metric(QStringLiteral("size_bytes"));
    QVERIFY(kl > 0);
    {
      const auto store = RunStore::open_existing(w.context().project().database_path.toStdString());
      store->add_metrics(w4.id, {{"predicted_kl", kl * 1.5},
                                 {"predicted_kl_low", kl * 1.2},
                                 {"predicted_kl_high", kl * 2},
                                 {"predicted_perplexity", ppl * 1.02},
                                 {"predicted_perplexity_low", ppl * 1.01},
                                 {"predicted_perplexity_high", ppl * 1.04},
                                 {"predicted_bits_per_weight", bits + 0.5},
                                 {"predicted_size_bytes", size * 1.1},
                                 // as an OCR run records it, for the CER column
                                 {"cer", 0.0123}});
    }
    w.context().runHistory().reload();
    QTRY_VERIFY(find_run(w.context().runs(), QStringLiteral("uniform-w4"))
                    ->metrics.contains(QStringLiteral("predicted_kl")));
    QTRY_VERIFY(!w.context().runHistory().isLoading());

    // The Runs table: predicted KL and perplexity for that run only, the band and the error
    // against the measured value on hover, flagged when the measurement fell outside.
    RunTableModel* model = w.runsPanel()->runModel();
    QCOMPARE(
        model->headerData(RunTableModel::PredictedKL, Qt::Horizontal, Qt::DisplayRole).toString(),
        QStringLiteral("pred. KL"));
    QCOMPARE(model->headerData(RunTableModel::PredictedPerplexity, Qt::Horizontal, Qt::DisplayRole)
                 .toString(),
             QStringLiteral("pred. ppl"));
    QCOMPARE(model->rowCount(), 5);
    QCOMPARE(model->headerData(RunTableModel::CER, Qt::Horizontal, Qt::DisplayRole).toString(),
             QStringLiteral("CER"));
    for (int row = 0; row < model->rowCount(); ++row) {
      const bool ocr =
          model->index(row, RunTableModel::Id).data(Qt::UserRole).toLongLong() == w4.id;
      QCOMPARE(model->index(row, RunTableModel::CER).data().toString(),
               ocr ? QStringLiteral("1.23 %") : QString());
    }
    for (int row = 0; row < model->rowCount(); ++row) {
      const QModelIndex pk = model->index(row, RunTableModel::PredictedKL);
      const QModelIndex pp = model->index(row, RunTableModel::PredictedPerplexity);
      if (pk.data(RunTableModel::RunIdRole).toLongLong() != w4.id) {
        QVERIFY(pk.data().toString().isEmpty() && pp.data().toString().isEmpty());
        QVERIFY(!pk.data(Qt::ToolTipRole).isValid() && !pp.data(Qt::ToolTipRole).isValid());
        continue;
      }
      QCOMPARE(pk.data(Qt::UserRole).toDouble(), kl * 1.5);
      QCOMPARE(pk.data().toString(), QString::number(kl * 1.5, 'g', 3));
      QCOMPARE(pp.data(Qt::UserRole).toDouble(), ppl * 1.02);
      QCOMPARE(pp.data().toString(), QString::number(ppl * 1.02, 'f', ppl * 1.02 < 100 ? 3 : 1));
      QCOMPARE(pk.data(Qt::ToolTipRole).toString(),
               QStringLiteral("predicted %1 [%2, %3], measured %4, error -33% (outside the band)")
                   .arg(QString::number(kl * 1.5, 'g', 3), QString::number(kl * 1.2, 'g', 3),
                        QString::number(kl * 2, 'g', 3), QString::number(kl, 'g', 3)));
      QVERIFY2(pp.data(Qt::ToolTipRole).toString().contains(QStringLiteral("error -2.0%")),
               qPrintable(pp.data(Qt::ToolTipRole).toString()));
      QVERIFY(pk.data(Qt::ForegroundRole).isValid());  // measured below the band
    }

    // Every axis pair: points at the chosen metrics, the front by definition.
    const QList<ui::RunRow> runs = w.context().runs();
    for (int yi = 0; yi < tp->yAxisBox()->count(); ++yi) {
      for (int xi = 0; xi < tp->xAxisBox()->count(); ++xi) {
        tp->yAxisBox()->setCurrentIndex(yi);
        tp->xAxisBox()->setCurrentIndex(xi);
        const QString xm = tp->xMetric(), ym = tp->yMetric();
        const QList<ui::PlotPoint> pts = tp->plot()->points();
        // Every run with both metrics (one run also has a CER, as OCR runs record).
        const auto with_both = std::count_if(runs.begin(), runs.end(), [&](const ui::RunRow& r) {
          return r.metrics.contains(xm) && r.metrics.contains(ym);
        });
        QCOMPARE(pts.size(), qsizetype(with_both));
        QSet<qint64> shown;
        for (const ui::PlotPoint& p : pts) {
          const ui::RunRow* r = nullptr;
          for (const ui::RunRow& row : runs)
            if (row.id == p.id) r = &row;
          QVERIFY(r);
          QCOMPARE(p.x, r->metric(xm));
          QCOMPARE(p.y, r->metric(ym));
          // Latency: the spread over repetitions as an error bar, a busy machine flagged.
          const bool latency = xm == QLatin1String("latency_ms_per_token");
          QCOMPARE(p.x_lo, latency ? r->metric(QStringLiteral("latency_ms_per_token_min")) : 0.0);
          QCOMPARE(p.x_hi, latency ? r->metric(QStringLiteral("latency_ms_per_token_max")) : 0.0);
          QCOMPARE(p.x_busy, latency && r->metric(QStringLiteral("latency_busy")) != 0);
          if (latency) QVERIFY(p.x_lo <= p.x && p.x <= p.x_hi);
          if (p.front) shown.insert(p.id);
          // The prediction, where either axis has one; an axis without takes the measured
          // value (latency, top-1); the band of y where the y metric has one.
          const QString pxm = predicted_name(xm), pym = predicted_name(ym);
          QCOMPARE(p.predicted, r->metrics.contains(pxm) || r->metrics.contains(pym));
          // Only uniform-w4's, and only where an axis has a prediction (KL, perplexity,
          // bits, size; not latency, top-1, CER or ms/image).
          const bool predicted_axis =
              ym == QLatin1String("kl") || ym == QLatin1String("perplexity") ||
              xm == QLatin1String("bits_per_weight") || xm == QLatin1String("size_bytes");
          QCOMPARE(p.predicted, p.id == w4.id && predicted_axis);
          if (!p.predicted) continue;
          QCOMPARE(p.pred_x, r->metric(pxm, p.x));
          QCOMPARE(p.pred_y, r->metric(pym, p.y));
          const bool band = r->metrics.contains(pym);  // y has a prediction (not top-1, CER)
          QCOMPARE(p.pred_y_lo, band ? r->metric(pym + QStringLiteral("_low")) : 0.0);
          QCOMPARE(p.pred_y_hi, band ? r->metric(pym + QStringLiteral("_high")) : 0.0);
          QVERIFY(p.pred_tooltip.contains(QStringLiteral("(predicted)")));
        }
        QCOMPARE(shown, brute_force_front(pts, ym == QLatin1String("top1")));
      }
    }
    // Fewer bits, a smaller model: size strictly follows the recipes' bit widths.
    auto size_of = [&](const char* recipe) {
      return find_run(runs, QString::fromLatin1(recipe))->metric(QStringLiteral("size_bytes"));
    };
    QVERIFY(size_of("rtn-w2") < size_of("rtn-w3"));
    QVERIFY(size_of("rtn-w3") < size_of("uniform-w4"));
    QVERIFY(size_of("uniform-w4") < size_of("baseline"));

    // The hollow marker as drawn: at the predicted (bits per weight, KL), found there by
    // hit-testing with its own tooltip, hollow (the plot's background at its centre, the
    // run's colour on its ring), and the measured marker still where it was.
    tp->yAxisBox()->setCurrentIndex(tp->yAxisBox()->findData(QStringLiteral("kl")));
    tp->xAxisBox()->setCurrentIndex(tp->xAxisBox()->findData(QStringLiteral("bits_per_weight")));
    w.show();  // laid out as on screen: the positions below are the ones painted
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    ui::TradeoffPlot* plot = tp->plot();
    QVERIFY(plot->isVisible() && plot->width() > 100 && plot->height() > 100);
    const QPointF at = plot->predictedPosition(w4.id);
    QVERIFY(at.x() > 0);
    QVERIFY(!plot->predictedPosition(find_run(runs, QStringLiteral("rtn-w8"))->id).x());
    const QPointF measured_at = plot->pointPosition(w4.id);
    QVERIFY(at.x() > measured_at.x() + 5);  // 0.5 bits more
    QVERIFY(at.y() < measured_at.y() - 5);  // 1.5 times the KL, up the axis
    bool predicted = false;
    QCOMPARE(plot->pointAt(at, &predicted), w4.id);
    QVERIFY(predicted);
    QCOMPARE(plot->pointAt(measured_at, &predicted), w4.id);
    QVERIFY(!predicted);
    QHelpEvent help(QEvent::ToolTip, at.toPoint(), plot->mapToGlobal(at.toPoint()));
    QApplication::sendEvent(plot, &help);
    QTRY_VERIFY(QToolTip::isVisible());
    QVERIFY2(QToolTip::text().contains(QStringLiteral("uniform-w4</b> (predicted)")),
             qPrintable(QToolTip::text()));
    QToolTip::hideText();
    const QImage image = plot->grab().toImage();
    const qreal dpr = image.devicePixelRatio();
    auto pixel = [&](QPointF p) { return image.pixelColor((p * dpr).toPoint()); };
    const QColor base = plot->palette().color(QPalette::Base);
    // Far from the background: more than a faint grid line over it.
    auto marked = [&](QColor c) {
      return std::abs(c.red() - base.red()) + std::abs(c.green() - base.green()) +
                 std::abs(c.blue() - base.blue()) >
             120;
    };
    QVERIFY(!marked(pixel(at)));
    bool ring = false;  // straight right of the centre: no line or bar of its own there
    for (double r = 3; r <= 15; r += 0.5) ring = ring || marked(pixel(at + QPointF(r, 0)));
    QVERIFY(ring);
    QVERIFY(marked(pixel(measured_at)));

    // Filters: text and status.
    ui::RunsPanel* rp = w.runsPanel();
    QAbstractItemModel* shown = rp->table()->model();
    QTest::keyClicks(rp->filterBox(), QStringLiteral("W8"));
    QCOMPARE(shown->rowCount(), 1);
    QCOMPARE(shown->index(0, RunTableModel::Recipe).data(Qt::UserRole).toString(),
             QStringLiteral("rtn-w8"));
    rp->filterBox()->clear();
    QCOMPARE(shown->rowCount(), 5);
    rp->statusBox()->setCurrentIndex(rp->statusBox()->findData(QStringLiteral("cancelled")));
    QCOMPARE(shown->rowCount(), 0);
    rp->statusBox()->setCurrentIndex(rp->statusBox()->findData(QStringLiteral("done")));
    QCOMPARE(shown->rowCount(), 5);
    rp->statusBox()->setCurrentIndex(0);

    // Sorting by perplexity uses the numbers: ascending order of the stored values.
    rp->table()->sortByColumn(RunTableModel::Perplexity, Qt::AscendingOrder);
    for (int r = 1; r < shown->rowCount(); ++r)
      QVERIFY(shown->index(r - 1, RunTableModel::Perplexity).data(Qt::UserRole).toDouble() <=
              shown->index(r, RunTableModel::Perplexity).data(Qt::UserRole).toDouble());
  }

  void compareShowsBothRunsAndTheirDifferences() {
    const QString path = QString::fromStdString(
        test::make_test_project((dir_.path() + "/cmp").toStdString(), "cmp"));
    studio::MainWindow w;
    QVERIFY(w.context().openProject(path));
    w.context().startRunAll();
    QTRY_COMPARE_WITH_TIMEOUT(job_state(w.context(), "Run all recipes"),
                              int(ui::JobState::Succeeded), kRunTimeoutMs);
    QTRY_COMPARE_WITH_TIMEOUT(w.runsPanel()->runModel()->rowCount(), 5, 10000);
    QTRY_VERIFY_WITH_TIMEOUT(all_runs_done(w.context(), 5), 10000);
    const QList<ui::RunRow> runs = w.context().runs();
    const ui::RunRow a = *find_run(runs, "uniform-w4"), b = *find_run(runs, "rtn-w2");

    // Select both rows (Ctrl+click), then Compare.
    ui::RunsPanel* rp = w.runsPanel();
    QVERIFY(!rp->compareButton()->isEnabled());
    QItemSelectionModel* sel = rp->table()->selectionModel();
    for (qint64 id : {a.id, b.id}) {
      const QModelIndex src = rp->runModel()->index(rp->runModel()->rowOfRun(id), 0);
      sel->select(static_cast<QSortFilterProxyModel*>(rp->table()->model())->mapFromSource(src),
                  QItemSelectionModel::Select | QItemSelectionModel::Rows);
    }
    QVERIFY(rp->compareButton()->isEnabled());
    QTest::mouseClick(rp->compareButton(), Qt::LeftButton);
    ui::RunCompareView* view = rp->compareView();
    QVERIFY(view);

    // Metrics: A, B and B - A as stored.
    QTableWidget* mt = view->metricsTable();
    int checked = 0;
    for (int r = 0; r < mt->rowCount(); ++r) {
      const QString m = mt->item(r, ui::RunCompareView::MetricName)->text();
      if (!a.metrics.contains(m) || !b.metrics.contains(m)) continue;
      QCOMPARE(mt->item(r, ui::RunCompareView::MetricA)->data(Qt::UserRole).toDouble(),
               a.metric(m));
      QCOMPARE(mt->item(r, ui::RunCompareView::MetricB)->data(Qt::UserRole).toDouble(),
               b.metric(m));
      QCOMPARE(mt->item(r, ui::RunCompareView::MetricDelta)->data(Qt::UserRole).toDouble(),
               b.metric(m) - a.metric(m));
      ++checked;
    }
    QCOMPARE(checked, int(a.metrics.size()));
    QCOMPARE(mt->item(0, ui::RunCompareView::MetricName)->text(), QStringLiteral("perplexity"));

    // Layers: every (layer, metric) of both runs from the store, with its difference.
    const auto store = RunStore::open_existing(w.context().project().database_path.toStdString());
    const RunRecord ra = *store->get_run(a.id), rb = *store->get_run(b.id);
    QVERIFY(!ra.layers.empty());
    QCOMPARE(ra.layers.size(), rb.layers.size());
    QTableWidget* lt = view->layersTable();
    QCOMPARE(lt->rowCount(), int(ra.layers.size()));
    for (int r = 0; r < lt->rowCount(); ++r) {
      const LayerMetric& la = ra.layers[size_t(r)];
      const LayerMetric& lb = rb.layers[size_t(r)];
      QCOMPARE(lt->item(r, ui::RunCompareView::Layer)->text().toStdString(), la.layer);
      QCOMPARE(lt->item(r, ui::RunCompareView::LayerMetric)->text().toStdString(), la.name);
      QCOMPARE(lb.layer, la.layer);  // both runs quantise the same tensors in model order
      QCOMPARE(lt->item(r, ui::RunCompareView::LayerA)->data(Qt::UserRole).toDouble(), la.value);
      QCOMPARE(lt->item(r, ui::RunCompareView::LayerB)->data(Qt::UserRole).toDouble(), lb.value);
      QCOMPARE(lt->item(r, ui::RunCompareView::LayerDelta)->data(Qt::UserRole).toDouble(),
               lb.value - la.value);
    }
    // 2 bits lose more than 4 on every layer.
    for (size_t i = 0; i < ra.layers.size(); ++i)
      if (ra.layers[i].name == "relative_error") QVERIFY(rb.layers[i].value > ra.layers[i].value);
  }

  void cancellingARunEndsItCancelledInTheJobAndTheStore() {
    test::TestProjectOptions o;
    o.text_bytes = 2 << 20;  // many seconds of evaluation if nobody cancels it
    const QString path = QString::fromStdString(
        test::make_test_project((dir_.path() + "/slow").toStdString(), "slow", o));
    studio::MainWindow w;
    w.show();
    QVERIFY(w.context().openProject(path));
    const int id = w.context().startRun(QStringLiteral("rtn-w8"));
    QVERIFY(id > 0);
    // The baseline run is recorded first (the store had none); wait until it evaluates.
    QTRY_VERIFY_WITH_TIMEOUT(test::find_job(w.context(), "Run rtn-w8").stage == "eval", 60000);
    QTRY_VERIFY_WITH_TIMEOUT(w.runsPanel()->runModel()->rowCount() == 1, 10000);
    const qint64 run_id = w.context().runs()[0].id;
    QCOMPARE(w.context().runs()[0].status, QStringLiteral("running"));

    auto* cancel = w.jobsPanel()->findChild<QPushButton*>(QStringLiteral("cancelJob%1").arg(id));
    QVERIFY(cancel);
    QTest::mouseClick(cancel, Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(job_state(w.context(), "Run rtn-w8"), int(ui::JobState::Cancelled),
                              20000);
    QCOMPARE(w.context().bridge().runningCount(), 0);
    QTRY_COMPARE_WITH_TIMEOUT(
        w.runsPanel()->runModel()->index(0, RunTableModel::Status).data().toString(),
        QStringLiteral("cancelled"), 10000);
    QCOMPARE(w.runsPanel()->runModel()->rowCount(), 1);  // the recipe never started
    const auto store = RunStore::open_existing(w.context().project().database_path.toStdString());
    const std::optional<RunRecord> r = store->get_run(run_id);
    QVERIFY(r);
    QCOMPARE(int(r->info.status), int(RunStatus::Cancelled));
    QCOMPARE(store->list_runs().size(), size_t(1));
    QCOMPARE(w.tradeoffPanel()->pointCount(), 0);  // a cancelled run has no metrics to plot
  }

  void runsSurviveClosingAndReopening() {
    const QString path = QString::fromStdString(
        test::make_test_project((dir_.path() + "/reopen").toStdString(), "reopen"));
    QList<ui::RunRow> before;
    {
      auto* w = new studio::MainWindow;
      QVERIFY(w->context().openProject(path));
      w->context().startRun(QStringLiteral("rtn-w3"));
      QTRY_COMPARE_WITH_TIMEOUT(job_state(w->context(), "Run rtn-w3"), int(ui::JobState::Succeeded),
                                kRunTimeoutMs);
      // Two runs (the baseline and rtn-w3), both finished as the store has them.
      QTRY_VERIFY_WITH_TIMEOUT(w->context().runs().size() == 2 &&
                                   w->context().runs()[0].status == "done" &&
                                   w->context().runs()[1].status == "done",
                               10000);
      before = w->context().runs();
      delete w;
    }
    studio::MainWindow w2;
    QVERIFY(w2.context().openProject(path));
    QTRY_COMPARE_WITH_TIMEOUT(w2.runsPanel()->runModel()->rowCount(), 2, 10000);
    const QList<ui::RunRow> after = w2.context().runs();
    for (int i = 0; i < 2; ++i) {
      QCOMPARE(after[i].id, before[i].id);
      QCOMPARE(after[i].recipe, before[i].recipe);
      QCOMPARE(after[i].status, QStringLiteral("done"));
      QCOMPARE(after[i].metrics, before[i].metrics);
    }
    QTRY_COMPARE(w2.tradeoffPanel()->pointCount(), 2);
    // Closing the project empties the panels.
    w2.context().closeProject();
    QCOMPARE(w2.runsPanel()->runModel()->rowCount(), 0);
    QCOMPARE(w2.tradeoffPanel()->pointCount(), 0);
  }

  void clickingAPlotPointSelectsItsRun() {
    const QString path = QString::fromStdString(
        test::make_test_project((dir_.path() + "/click").toStdString(), "click"));
    studio::MainWindow w;
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QVERIFY(w.context().openProject(path));
    w.context().startRunAll();
    QTRY_COMPARE_WITH_TIMEOUT(job_state(w.context(), "Run all recipes"),
                              int(ui::JobState::Succeeded), kRunTimeoutMs);
    ui::TradeoffPanel* tp = w.tradeoffPanel();
    QTRY_COMPARE_WITH_TIMEOUT(tp->pointCount(), 5, 10000);
    // Bits per weight separates the recipes' markers on the x axis.
    tp->xAxisBox()->setCurrentIndex(tp->xAxisBox()->findData(QStringLiteral("bits_per_weight")));
    ui::TradeoffPlot* plot = tp->plot();
    QVERIFY(plot->isVisible() && plot->width() > 100 && plot->height() > 100);
    for (const ui::PlotPoint& p : plot->points()) {
      const QPoint at = plot->pointPosition(p.id).toPoint();
      QVERIFY(plot->rect().contains(at));
      QTest::mouseClick(plot, Qt::LeftButton, {}, at);
      QCOMPARE(w.context().selection().run_id, p.id);
      // The Runs table follows: its current row is that run.
      const QModelIndex current = w.runsPanel()->table()->currentIndex();
      QVERIFY(current.isValid());
      QCOMPARE(current.data(RunTableModel::RunIdRole).toLongLong(), p.id);
    }
    // Hovering a marker shows its run's recipe and values.
    const ui::PlotPoint& first_point = plot->points().first();
    const QPoint at = plot->pointPosition(first_point.id).toPoint();
    QHelpEvent help(QEvent::ToolTip, at, plot->mapToGlobal(at));
    QApplication::sendEvent(plot, &help);
    QTRY_VERIFY(QToolTip::isVisible());
    QVERIFY(QToolTip::text().contains(first_point.label));
    QVERIFY(QToolTip::text().contains(QStringLiteral("bits_per_weight")));
    // A click on empty space selects nothing new.
    const qint64 last = w.context().selection().run_id;
    QTest::mouseClick(plot, Qt::LeftButton, {}, QPoint(2, 2));
    QCOMPARE(w.context().selection().run_id, last);
    // And a row chosen in the table is the run the plot rings.
    const QModelIndex first = w.runsPanel()->table()->model()->index(0, 0);
    w.runsPanel()->table()->setCurrentIndex(first);
    QCOMPARE(w.context().selection().run_id, first.data(RunTableModel::RunIdRole).toLongLong());
  }

  void runningNeedsASavedProjectAndAKnownRecipe() {
    studio::MainWindow w;
    w.context().newProject(QStringLiteral("unsaved"));
    QCOMPARE(w.context().startRun(QStringLiteral("anything")), 0);
    QVERIFY(test::log_contains(w.context(), "save the project before running recipes"));
    QVERIFY(w.context().openProject(project_));
    QCOMPARE(w.context().startRun(QStringLiteral("no-such-recipe")), 0);
    QVERIFY(test::log_contains(w.context(), "the project has no recipe 'no-such-recipe'"));
  }

 private:
  QTemporaryDir dir_;
  QString project_;
};

QTEST_MAIN(StudioRunsTest)
#include "test_studio_runs.moc"
