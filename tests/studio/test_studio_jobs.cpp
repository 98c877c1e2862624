// Background jobs seen from the UI: Evaluate runs to completion and logs the perplexity
// the engine computes directly, the same number a project run records for the uncompressed
// model (one evaluation path: the model's tokenizer, the project's settings), and can be
// cancelled from its Cancel button while the UI keeps processing events.
#include <QDir>
#include <QFileInfo>
#include <QPushButton>
#include <QRegularExpression>
#include <QTableWidget>
#include <QTimer>
#include <QtTest>
#include <cmath>
#include <fstream>
#include <iterator>

#include "app/image_io/qt_image_loader.h"
#include "engine/eval/perplexity.h"
#include "engine/model/llama_model.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/onnx/onnx_runner.h"
#include "engine/project/project.h"
#include "engine/runs/project_runner.h"
#include "engine/runs/run_store.h"
#include "studio_test_util.h"
#include "widgets/jobs_panel.h"

using namespace mcw;

class StudioJobsTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() {
    test::use_test_settings();
    QVERIFY(dir_.isValid());
  }

  void evaluateRunsToCompletionAndLogsThePerplexity() {
    test::TestProjectOptions o;
    o.text_bytes = 3000;
    o.window = 48;
    o.stride = 24;
    o.max_tokens = 1000;
    const std::string dir = (dir_.path() + "/small").toStdString();
    const QString path = QString::fromStdString(test::make_test_project(dir, "small", o));
    studio::MainWindow w;
    QVERIFY(w.context().openProject(path));
    w.evaluateAction()->trigger();
    QTRY_COMPARE_WITH_TIMEOUT(int(test::find_job(w.context(), "Evaluate").state),
                              int(ui::JobState::Succeeded), 30000);
    QString line;
    for (const QString& l : w.context().logLines())
      if (l.contains(QStringLiteral("perplexity"))) line = l;
    QVERIFY2(!line.isEmpty(), qPrintable(w.context().logLines().join('\n')));
    const auto match = QRegularExpression(QStringLiteral("perplexity ([0-9.]+)")).match(line);
    QVERIFY(match.hasMatch());
    const double shown = match.captured(1).toDouble();

    // The same evaluation straight through the engine: the model's own tokenizer, the first
    // 1000 tokens, the project's window and stride.
    const ModelFile file = open_model_file(dir + "/models/tiny.bin");
    const LlamaModel model = load_llama(file);
    std::ifstream in(dir + "/data/eval.txt", std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<int32_t> tokens = load_tokenizer(file)->encode(text, false);
    QVERIFY(tokens.size() > 1000);
    tokens.resize(1000);
    const EvalResult ref = evaluate(model, tokens, {48, 24});
    QVERIFY2(std::abs(shown - ref.perplexity) < 1e-3 * ref.perplexity,
             qPrintable(QStringLiteral("%1 vs %2").arg(shown).arg(ref.perplexity)));
    QVERIFY(line.contains(QStringLiteral("over %1 scored of 1000 tokens").arg(ref.scored)));
    // A project run of the uncompressed model records the same perplexity.
    const ProjectRunInputs run_in = load_project_run_inputs(path.toStdString());
    const std::unique_ptr<RunStore> store = RunStore::open(run_in.database_path);
    const RecipeRunOutcome base = run_project_baseline(*store, run_in, {});
    double recorded = 0;
    for (const Metric& m : base.metrics)
      if (m.name == "perplexity") recorded = m.value;
    QCOMPARE(recorded, ref.perplexity);
    // The job row shows it finished.
    ui::JobsPanel* jobs = w.jobsPanel();
    const int row = jobs->rowOf(test::find_job(w.context(), "Evaluate").id);
    QVERIFY(row >= 0);
    QCOMPARE(jobs->table()->item(row, ui::JobsPanel::State)->text(), QStringLiteral("done"));
  }

  void evaluateCanBeCancelledAndTheUiStaysResponsive() {
    test::TestProjectOptions o;
    o.text_bytes = 4 << 20;  // tens of seconds of work if nobody cancels it
    o.window = 64;
    o.stride = 64;
    const QString path = QString::fromStdString(
        test::make_test_project((dir_.path() + "/big").toStdString(), "big", o));
    studio::MainWindow w;
    w.show();
    QVERIFY(w.context().openProject(path));
    const int id = w.context().startEvaluate();
    QVERIFY(id > 0);
    QTRY_VERIFY_WITH_TIMEOUT(test::find_job(w.context(), "Evaluate").stage == "eval", 20000);

    // Timers keep firing on the UI thread while the job runs.
    int ticks = 0;
    QTimer timer;
    connect(&timer, &QTimer::timeout, [&] { ++ticks; });
    timer.start(10);
    QTest::qWait(200);
    QVERIFY(ticks >= 5);
    QCOMPARE(int(test::find_job(w.context(), "Evaluate").state), int(ui::JobState::Running));

    auto* cancel = w.jobsPanel()->findChild<QPushButton*>(QStringLiteral("cancelJob%1").arg(id));
    QVERIFY(cancel);
    QVERIFY(cancel->isEnabled());
    QTest::mouseClick(cancel, Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(int(test::find_job(w.context(), "Evaluate").state),
                              int(ui::JobState::Cancelled), 10000);
    QVERIFY(!cancel->isEnabled());
    QVERIFY(test::log_contains(w.context(), "Evaluate: cancelled"));
    QVERIFY(!test::log_contains(w.context(), "perplexity"));
    QCOMPARE(w.context().bridge().runningCount(), 0);
  }

  void evaluateNeedsAnOpenProject() {
    studio::MainWindow w;
    QCOMPARE(w.context().startEvaluate(), 0);  // no project open
    QVERIFY(test::log_contains(w.context(), "Evaluate needs an open project"));
  }

  // An ONNX project (PP-OCRv4's recogniser): Evaluate scores the evaluation set, and its
  // CER is the one the engine computes on the same lines.
  void evaluateOfAnOcrProjectLogsTheCer() {
    const std::string src = MCW_SOURCE_DIR;
    const std::string model = src + "/assets/models/ppocr/ch_PP-OCRv4_rec_infer.onnx";
    if (!QFileInfo::exists(QString::fromStdString(model)))
      QSKIP("run installer/deps-debian.sh to fetch the PP-OCRv4 models");
    // Five of the demo project's lines, named by absolute paths from a set of our own.
    const std::string dir = (dir_.path() + "/ocr").toStdString();
    QVERIFY(QDir().mkpath(QString::fromStdString(dir + "/eval")));
    std::ifstream labels(src + "/projects/ocr-demo/eval-lines/labels.tsv");
    std::ofstream mine(dir + "/eval/labels.tsv");
    std::string line;
    for (int k = 0; k < 5 && std::getline(labels, line); ++k)
      mine << src << "/projects/ocr-demo/eval-lines/" << line << "\n";
    mine.close();
    Project p;
    p.name = "ocr";
    p.model_path = model;
    p.evaluation_path = dir + "/eval";
    save_project(p, dir + "/ocr.mcwproj");
    studio::MainWindow w;
    QVERIFY(w.context().openProject(QString::fromStdString(dir + "/ocr.mcwproj")));
    QVERIFY(w.context().startEvaluate() > 0);
    QTRY_COMPARE_WITH_TIMEOUT(int(test::find_job(w.context(), "Evaluate").state),
                              int(ui::JobState::Succeeded), 60000);
    const OnnxModel m = read_onnx(model);
    const OcrScore want = score_recogniser(
        OnnxRunner(m), read_ocr_set(dir + "/eval"),
        load_ocr_keys(src + "/assets/models/ppocr/ppocr_keys_v1.txt"), qt_load_image);
    QCOMPARE(want.lines, int64_t(5));
    const QString expected = QStringLiteral("Evaluate ocr: CER %1 % (%2 errors / %3 characters)")
                                 .arg(100 * want.cer(), 0, 'f', 2)
                                 .arg(want.errors)
                                 .arg(want.chars);
    QVERIFY2(test::log_contains(w.context(), expected), qPrintable(expected));
  }

  void closingTheWindowCancelsRunningJobs() {
    test::TestProjectOptions o;
    o.text_bytes = 4 << 20;
    const QString path = QString::fromStdString(
        test::make_test_project((dir_.path() + "/close").toStdString(), "close", o));
    auto* w = new studio::MainWindow;
    QVERIFY(w->context().openProject(path));
    w->context().startEvaluate();
    QTRY_VERIFY_WITH_TIMEOUT(test::find_job(w->context(), "Evaluate").stage == "eval", 20000);
    delete w;  // must cancel and join, not hang or crash
  }

 private:
  QTemporaryDir dir_;
};

QTEST_MAIN(StudioJobsTest)
#include "test_studio_jobs.moc"
