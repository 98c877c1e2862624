// The sensitivity scan from the studio: the Scan button runs the engine's scan as a job;
// cells reach the heatmap while the job still runs, and when it ends the heatmap holds
// exactly the cells the run store holds (read here through a connection of its own, with
// the engine's metric keys); a second scan finds every cell cached; a scan cancelled from
// the Jobs panel ends cancelled, leaves only whole cells in the store, and the next scan
// measures exactly the rest. The UI heartbeat beats during a scan; its lateness is
// printed, not asserted (timing claims belong in benchmarks). An ONNX project's scan fills
// the grid with its graph's layers, the values the engine's ONNX scan computes on the same
// images, and finds them cached the second time.
#include <QImage>
#include <QLabel>
#include <QPainter>
#include <QPushButton>
#include <QTableWidget>
#include <QtTest>
#include <filesystem>
#include <map>
#include <set>

#include "../engine/onnx_tiny_recogniser.h"
#include "app/image_io/qt_image_loader.h"
#include "app/studio/sensitivity_data.h"
#include "engine/io/model_file.h"
#include "engine/ocr/ocr_eval.h"
#include "engine/runs/fingerprint.h"
#include "engine/runs/project_runner.h"
#include "engine/runs/run_store.h"
#include "engine/search/layer_latency.h"
#include "engine/search/onnx_sensitivity.h"
#include "engine/search/sensitivity_scan.h"
#include "studio_test_util.h"
#include "widgets/heatmap_view.h"
#include "widgets/jobs_panel.h"
#include "widgets/sensitivity_panel.h"

using namespace mcw;

namespace {

constexpr int kScanTimeoutMs = 120000;
constexpr int kCells = 14 * 7;  // the tiny model's linears × the default settings

// Counts the cells that reach the panels while the scan is still running, and cancels the
// scan at the first one when asked to.
class CellWatcher : public ui::IProjectViewer {
 public:
  explicit CellWatcher(studio::ProjectContext& c, bool cancel_at_first = false)
      : c_(c), cancel_(cancel_at_first) {
    c_.addViewer(this);
  }
  ~CellWatcher() override { c_.removeViewer(this); }
  void onSensitivityCell(int, int) override { seen(); }
  void onSensitivityLoaded() override { seen(); }
  int live = 0;

 private:
  void seen() {
    if (!c_.sensitivityScanRunning()) return;
    ++live;
    if (cancel_ && live == 1) c_.cancelJob(c_.sensitivityScanJob());
  }
  studio::ProjectContext& c_;
  bool cancel_;
};

struct StoredCell {
  std::map<std::string, double> quantities;  // "kl" -> value, ...
  std::set<std::string> measurements;        // the keys' "@..." parts
};

// The store's cells, through a connection of its own: (layer, setting) -> quantities.
std::map<std::pair<QString, QString>, StoredCell> stored_cells(const studio::ProjectContext& c) {
  const auto store = RunStore::open_existing(c.project().database_path.toStdString());
  const std::string fp = model_fingerprint(open_model_file(c.model().path.toStdString()));
  std::map<std::pair<QString, QString>, StoredCell> out;
  for (const SensitivityEntry& e : store->list_sensitivity(fp)) {
    const size_t at = e.metric.find('@');
    StoredCell& cell = out[{QString::fromStdString(e.layer), QString::fromStdString(e.setting)}];
    cell.quantities[e.metric.substr(0, at)] = e.value;
    cell.measurements.insert(at == std::string::npos ? "" : e.metric.substr(at));
  }
  return out;
}

// Every stored cell is whole (all four quantities of one measurement), and the heatmap
// shows a value exactly where the store holds a cell, with the stored KL.
void check_heatmap_matches_store(const studio::MainWindow& w, int expected_cells) {
  const auto stored = stored_cells(const_cast<studio::MainWindow&>(w).context());
  QCOMPARE(int(stored.size()), expected_cells);
  for (const auto& [key, cell] : stored) {
    QCOMPARE(int(cell.measurements.size()), 1);
    for (const char* q : {"kl", "ppl", "top1", "bits"})
      QVERIFY2(cell.quantities.count(q), qPrintable(key.first + " " + key.second + " " + q));
  }
  const ui::SensitivityGrid& g = const_cast<studio::MainWindow&>(w).context().sensitivity();
  const ui::HeatmapView* map = w.sensitivityPanel()->heatmap();
  QCOMPARE(map->rowCount(), int(g.layers.size()));
  QCOMPARE(map->columnCount(), int(g.settings.size()));
  int shown = 0;
  for (int r = 0; r < g.layers.size(); ++r)
    for (int c = 0; c < g.settings.size(); ++c) {
      const auto it = stored.find({g.layers[r], g.settings[c]});
      QCOMPARE(map->hasValue(r, c), it != stored.end());
      if (it == stored.end()) continue;
      ++shown;
      QCOMPARE(g.at(r, c).value, it->second.quantities.at("kl"));
      QCOMPARE(g.at(r, c).perplexity, it->second.quantities.at("ppl"));
    }
  QCOMPARE(shown, expected_cells);  // every stored cell is on the grid
}

int job_state(const studio::ProjectContext& c, int id) {
  for (const ui::JobProgress& j : c.jobs())
    if (j.id == id) return int(j.state);
  return -1;
}

}  // namespace

class StudioSensitivityTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { test::use_test_settings(); }
  void init() { QSettings().clear(); }

  void scanFillsTheHeatmapLiveAndCachesEveryCell() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString project =
        QString::fromStdString(test::make_test_project(dir.path().toStdString(), "scan"));
    studio::MainWindow w;
    studio::ProjectContext& c = w.context();
    ui::SensitivityPanel* panel = w.sensitivityPanel();
    QVERIFY(!panel->scanButton()->isEnabled());  // nothing open yet
    QVERIFY(c.openProject(project));
    QTRY_VERIFY_WITH_TIMEOUT(panel->scanButton()->isEnabled(), 15000);
    QVERIFY(c.sensitivityScanAvailable());

    CellWatcher watcher(c);
    QTest::mouseClick(panel->scanButton(), Qt::LeftButton);
    const int id = c.sensitivityScanJob();
    QVERIFY(id > 0);
    QVERIFY(c.sensitivityScanRunning());
    QVERIFY(!panel->scanButton()->isEnabled());  // one scan at a time
    QCOMPARE(c.startSensitivityScan(), 0);
    // The whole grid is laid out at once, every cell pending.
    QCOMPARE(panel->heatmap()->rowCount(), 14);
    QCOMPARE(panel->heatmap()->columnCount(), 7);
    QTRY_COMPARE_WITH_TIMEOUT(job_state(c, id), int(ui::JobState::Succeeded), kScanTimeoutMs);
    QVERIFY2(watcher.live > 0, "no cell reached the heatmap while the scan ran");
    QCOMPARE(c.lastSensitivityScan().cells, kCells);
    QCOMPARE(c.lastSensitivityScan().computed, kCells);
    QCOMPARE(c.lastSensitivityScan().cached, 0);
    check_heatmap_matches_store(w, kCells);
    QVERIFY(panel->statusLabel()->text().contains(QStringLiteral("%1 of %1").arg(kCells)));
    QVERIFY(panel->scanButton()->isEnabled());

    // The UI thread kept beating while the scan ran on workers.
    const studio::HeartbeatStats beat = c.heartbeatStats(id);
    QCOMPARE(beat.job, QStringLiteral("Sensitivity scan"));
    QVERIFY2(beat.ticks > 0, "the heartbeat did not beat during the scan");
    QVERIFY(beat.worst_ms >= beat.p99_ms && beat.p99_ms >= 0);
    qInfo("UI heartbeat during the scan: %s", qPrintable(beat.describe()));
    QTRY_VERIFY_WITH_TIMEOUT(  // the log line follows the job's own
        test::log_contains(c, QStringLiteral("UI heartbeat: ")) || beat.ticks < 20, 5000);
    QVERIFY(!c.heartbeat().isBeating());  // no job runs: the timer is off

    // The same scan again: every cell read back from the store, none measured.
    const int again = c.startSensitivityScan();
    QVERIFY(again > 0);
    QTRY_COMPARE_WITH_TIMEOUT(job_state(c, again), int(ui::JobState::Succeeded), kScanTimeoutMs);
    QCOMPARE(c.lastSensitivityScan().cached, kCells);
    QCOMPARE(c.lastSensitivityScan().computed, 0);
    QVERIFY(test::log_contains(c, QStringLiteral("%1 cached, 0 measured").arg(kCells)));
    check_heatmap_matches_store(w, kCells);

    // Reopening reads the same grid from the cache.
    QVERIFY(c.openProject(project));
    QTRY_COMPARE_WITH_TIMEOUT(panel->heatmap()->rowCount(), 14, 15000);
    QTRY_VERIFY_WITH_TIMEOUT(panel->heatmap()->hasValue(13, 6), 15000);
    check_heatmap_matches_store(w, kCells);
  }

  // A store holding only a proxy's cells shows them, and the caption and legend say which
  // measure they are; KL cells, once there, are preferred, and a KL cell arriving in a
  // proxy grid starts it over as KL.
  // "Measure latency" times the grid's settings on this machine as a job and keeps the
  // table in the store under this machine's key; the grid then carries each cell's decode
  // time, each row's uncompressed time and the model's step, as the store holds them.
  void measureLatencyFillsTheGrid() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string project = test::make_test_project(dir.path().toStdString(), "latency");
    const ProjectRunInputs in = load_project_run_inputs(project);
    SensitivityOptions o;
    o.settings = {scan_setting_from_name("w8"), scan_setting_from_name("w4")};
    o.windows = 2;
    o.window = 32;
    SensitivityScan(in.base, in.fingerprint, in.evaluation_tokens, o)
        .run(RunStore::open(in.database_path).get());
    studio::MainWindow w;
    studio::ProjectContext& c = w.context();
    ui::SensitivityPanel* panel = w.sensitivityPanel();
    QVERIFY(c.openProject(QString::fromStdString(project)));
    QTRY_VERIFY_WITH_TIMEOUT(panel->heatmap()->hasValue(13, 1), 15000);
    QVERIFY(std::isnan(c.sensitivity().model_latency_ms));
    QTRY_VERIFY_WITH_TIMEOUT(panel->latencyButton()->isEnabled(), 15000);

    QTest::mouseClick(panel->latencyButton(), Qt::LeftButton);
    QVERIFY(c.latencyMeasureRunning());
    QVERIFY(!panel->latencyButton()->isEnabled());
    QCOMPARE(c.startLatencyMeasure(), 0);  // one at a time
    QTRY_VERIFY_WITH_TIMEOUT(!c.latencyMeasureRunning(), kScanTimeoutMs);
    QVERIFY2(test::log_contains(c, QStringLiteral("layer latency: 14 layers × 2 settings")),
             qPrintable(c.logLines().join(QLatin1Char('\n'))));
    QTRY_VERIFY_WITH_TIMEOUT(!std::isnan(c.sensitivity().model_latency_ms), 15000);

    const ui::SensitivityGrid& g = c.sensitivity();
    std::vector<std::string> layers;
    for (const QString& l : g.layers) layers.push_back(l.toStdString());
    const auto stored = load_layer_latency(*RunStore::open_existing(in.database_path), in.fingerprint,
                                           layers, {"w4", "w8"});
    QVERIFY(stored.has_value());
    QCOMPARE(g.model_latency_ms, stored->model_ms_per_token);
    for (int r = 0; r < g.layers.size(); ++r) {
      QCOMPARE(g.dense_latency_ms[r], stored->dense_ms[size_t(r)]);
      for (int col = 0; col < g.settings.size(); ++col) {
        QVERIFY(g.at(r, col).latency_ms > 0);
        QCOMPARE(g.at(r, col).latency_ms, stored->at(layers[size_t(r)], g.settings[col].toStdString()));
      }
    }
    QVERIFY(panel->latencyButton()->isEnabled());
    QVERIFY(panel->latencyButton()->toolTip().contains(QStringLiteral("stored already")));
  }

  void proxyCellsShowTheirMeasure() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string project = test::make_test_project(dir.path().toStdString(), "proxy");
    const ProjectRunInputs in = load_project_run_inputs(project);
    SensitivityOptions o;
    o.settings = {scan_setting_from_name("w8"), scan_setting_from_name("w2")};
    o.measure = SensitivityMeasure::Layer;
    o.compress.calib_windows = 4;
    o.compress.calib_window = 32;
    {
      const auto store = RunStore::open(in.database_path);
      const auto& tokens = in.calibration_tokens.empty() ? in.evaluation_tokens : in.calibration_tokens;
      QCOMPARE(SensitivityScan(in.base, in.fingerprint, tokens, o).run(store.get()).computed, 28);
    }
    studio::MainWindow w;
    ui::SensitivityPanel* panel = w.sensitivityPanel();
    QVERIFY(w.context().openProject(QString::fromStdString(project)));
    QTRY_VERIFY_WITH_TIMEOUT(panel->heatmap()->hasValue(13, 1), 15000);
    QCOMPARE(panel->heatmap()->quantity(), QStringLiteral("layer err"));
    QVERIFY(panel->heatmap()->hoverText(0, 0).contains(QStringLiteral("layer err ")));
    QVERIFY(panel->captionLabel()->text().contains(QStringLiteral("of the layer (proxy)")));

    const std::vector<std::string> order = {"a", "b"};
    ui::SensitivityGrid g = studio::sensitivity_grid(
        {{"a", "w4", "layer@4x32#0", 0.5}, {"b", "w4", "layer@4x32#0", 0.25}}, order);
    QCOMPARE(g.quantity, QStringLiteral("layer err"));
    QCOMPARE(g.at(1, 0).value, 0.25);
    g = studio::sensitivity_grid({{"a", "w4", "layer@4x32#0", 0.5}, {"a", "w4", "kl@3x32#1", 0.1}}, order);
    QCOMPARE(g.quantity, QStringLiteral("KL"));
    QCOMPARE(g.at(0, 0).value, 0.1);
    g = studio::sensitivity_grid({{"a", "w4", "block@3x32#0", 0.5}, {"b", "w4", "block@3x32#0", 0.2}}, order);
    QCOMPARE(g.quantity, QStringLiteral("block err"));
    bool reshaped = false;
    studio::put_sensitivity(g, {"a", "w4", "kl", 0.3}, order, &reshaped);
    QVERIFY(reshaped);
    QCOMPARE(g.quantity, QStringLiteral("KL"));
    QVERIFY(g.at(0, 0).ready && !g.at(1, 0).ready);  // b's block value is not a KL
  }

  void cancelledScanKeepsWholeCellsAndResumes() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString project =
        QString::fromStdString(test::make_test_project(dir.path().toStdString(), "cancel"));
    studio::MainWindow w;
    studio::ProjectContext& c = w.context();
    QVERIFY(c.openProject(project));
    QTRY_VERIFY_WITH_TIMEOUT(c.sensitivityScanAvailable(), 15000);
    int id = 0;
    {
      CellWatcher watcher(c, /*cancel_at_first=*/true);  // cancels as the first cell lands
      id = c.startSensitivityScan();
      QVERIFY(id > 0);
      QTRY_VERIFY_WITH_TIMEOUT(job_state(c, id) != int(ui::JobState::Running), kScanTimeoutMs);
    }
    QCOMPARE(job_state(c, id), int(ui::JobState::Cancelled));
    // The Jobs panel shows it cancelled too.
    const int row = w.jobsPanel()->rowOf(id);
    QVERIFY(row >= 0);
    QCOMPARE(w.jobsPanel()->table()->item(row, ui::JobsPanel::State)->text(),
             ui::job_state_name(ui::JobState::Cancelled));
    const int kept = int(stored_cells(c).size());
    QVERIFY2(kept >= 1 && kept < kCells, qPrintable(QString::number(kept)));
    check_heatmap_matches_store(w, kept);

    // The next scan measures exactly what the cancelled one left.
    const int resumed = c.startSensitivityScan();
    QTRY_COMPARE_WITH_TIMEOUT(job_state(c, resumed), int(ui::JobState::Succeeded), kScanTimeoutMs);
    QCOMPARE(c.lastSensitivityScan().cached, kept);
    QCOMPARE(c.lastSensitivityScan().computed, kCells - kept);
    check_heatmap_matches_store(w, kCells);
  }

  void onnxProjectScansItsGraphsLayers() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::filesystem::path root = dir.path().toStdString();
    const std::string model = test::write_recogniser(root).string();
    std::filesystem::create_directories(root / "eval");
    std::ofstream labels(root / "eval" / "labels.tsv");
    for (int k = 0; k < 3; ++k) {  // striped lines, 48 high, 96 to 288 wide
      QImage img(96 * (k + 1), 48, QImage::Format_RGB888);
      img.fill(Qt::white);
      QPainter p(&img);
      for (int x = 0; x < img.width(); x += 5 + k) p.fillRect(x, 8 + k, 2, 30, Qt::black);
      p.end();
      const QString file = QStringLiteral("l%1.png").arg(k);
      QVERIFY(img.save(QString::fromStdString((root / "eval").string()) + "/" + file));
      labels << file.toStdString() << "\tab\n";
    }
    labels.close();
    Project pr;
    pr.name = "ocr";
    pr.model_path = model;
    pr.evaluation_path = (root / "eval").string();
    const std::string file = (root / "ocr.mcwproj").string();
    save_project(pr, file);

    studio::MainWindow w;
    studio::ProjectContext& c = w.context();
    QVERIFY(c.openProject(QString::fromStdString(file)));
    QTRY_VERIFY_WITH_TIMEOUT(c.sensitivityScanAvailable(), 15000);
    const int id = c.startSensitivityScan();
    QVERIFY(id > 0);
    const std::vector<ScanSetting> settings = default_scan_settings();
    QCOMPARE(w.sensitivityPanel()->heatmap()->rowCount(), 2);  // W and Wm, in graph order
    QCOMPARE(w.sensitivityPanel()->heatmap()->columnCount(), int(settings.size()));
    QTRY_COMPARE_WITH_TIMEOUT(job_state(c, id), int(ui::JobState::Succeeded), kScanTimeoutMs);
    const int cells = 2 * int(settings.size());
    QCOMPARE(c.lastSensitivityScan().computed, cells);

    // The engine's scan on the same three images, independently of the studio.
    const OnnxModel m = read_onnx(model);
    const std::vector<OnnxInputs> inputs =
        ocr_calibration_inputs(m, read_ocr_set((root / "eval").string()), 16, qt_load_image);
    QCOMPARE(int(inputs.size()), 3);
    const OnnxSensitivity want = onnx_sensitivity(m, settings, inputs);
    const ui::SensitivityGrid& g = c.sensitivity();
    QCOMPARE(g.quantity, QStringLiteral("KL"));
    QCOMPARE(g.layers, (QStringList{QStringLiteral("W"), QStringLiteral("Wm")}));
    for (int r = 0; r < 2; ++r)
      for (int k = 0; k < int(settings.size()); ++k) {
        const int col = int(g.settings.indexOf(QString::fromStdString(settings[size_t(k)].name)));
        QVERIFY(col >= 0);
        QVERIFY(g.at(r, col).ready);
        QCOMPARE(g.at(r, col).value, want.at(size_t(r), size_t(k)));
        QCOMPARE(g.at(r, col).bits, quint64(want.bits[size_t(r) * settings.size() + size_t(k)]));
      }
    // Again: every cell read back from the store; and a fresh window reads the grid back.
    const int again = c.startSensitivityScan();
    QTRY_COMPARE_WITH_TIMEOUT(job_state(c, again), int(ui::JobState::Succeeded), kScanTimeoutMs);
    QCOMPARE(c.lastSensitivityScan().cached, cells);
    QCOMPARE(c.lastSensitivityScan().computed, 0);
    studio::MainWindow reopened;
    QVERIFY(reopened.context().openProject(QString::fromStdString(file)));
    QTRY_COMPARE_WITH_TIMEOUT(int(reopened.context().sensitivity().cells.size()), cells, 15000);
    QTRY_VERIFY(reopened.context().sensitivity().at(1, 0).ready);
    QCOMPARE(reopened.context().sensitivity().layers, g.layers);
  }

  void cancelFromTheJobsPanel() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    test::TestProjectOptions o;
    o.seed = 7;
    const QString project =
        QString::fromStdString(test::make_test_project(dir.path().toStdString(), "jobs", o));
    studio::MainWindow w;
    studio::ProjectContext& c = w.context();
    QVERIFY(c.openProject(project));
    QTRY_VERIFY_WITH_TIMEOUT(c.sensitivityScanAvailable(), 15000);
    const int id = c.startSensitivityScan();
    QVERIFY(id > 0);
    const int row = w.jobsPanel()->rowOf(id);
    QVERIFY(row >= 0);
    auto* cancel =
        qobject_cast<QPushButton*>(w.jobsPanel()->table()->cellWidget(row, ui::JobsPanel::Cancel));
    QVERIFY(cancel);
    QTest::mouseClick(cancel, Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(job_state(c, id) != int(ui::JobState::Running), kScanTimeoutMs);
    QCOMPARE(job_state(c, id), int(ui::JobState::Cancelled));
    // Whatever finished before the cancel is whole and shown; the rest is not stored.
    if (QFileInfo::exists(c.project().database_path))
      check_heatmap_matches_store(w, int(stored_cells(c).size()));
  }
};

QTEST_MAIN(StudioSensitivityTest)
#include "test_studio_sensitivity.moc"
