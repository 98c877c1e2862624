// Exports from the studio after a real run on the tiny project: the report as HTML,
// Markdown, CSV and PDF (files written, the run's recipe named, a PDF that is one); the
// selected run's compressed model as a Hugging Face directory and as GGUF, each reopened
// from disk and evaluated again to the run's recorded perplexity, and recorded as an
// artifact of the run; as a compressed-tensors checkpoint; a stopped HF export goes on from its checkpoint. The run itself records the estimate it started with, and the
// Runs table shows it beside the duration.
#include <QAction>
#include <QFile>
#include <QtTest>
#include <cmath>
#include <filesystem>

#include "engine/core/sha256.h"
#include "engine/eval/perplexity.h"
#include "engine/export/compress_to_directory.h"
#include "engine/export/packed_safetensors.h"
#include "engine/io/gguf.h"
#include "engine/io/model_file.h"
#include "engine/model/llama_model.h"
#include "engine/project/project.h"
#include "engine/runs/project_runner.h"
#include "engine/runs/run_store.h"
#include "studio_test_util.h"
#include "widgets/run_table_model.h"
#include "widgets/runs_panel.h"

using namespace mcw;

namespace {

constexpr int kJobTimeoutMs = 120000;

int job_state(const studio::ProjectContext& c, int id) {
  for (const ui::JobProgress& j : c.jobs())
    if (j.id == id) return int(j.state);
  return -1;
}

QByteArray read_all(const QString& path) {
  QFile f(path);
  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

bool wait_job(const studio::ProjectContext& c, int id) {
  if (id <= 0) return false;
  QElapsedTimer t;
  t.start();
  while (job_state(c, id) == int(ui::JobState::Running) && t.elapsed() < kJobTimeoutMs)
    QTest::qWait(20);
  return job_state(c, id) == int(ui::JobState::Succeeded);
}

}  // namespace

class StudioExportTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() {
    test::use_test_settings();
    QVERIFY(dir_.isValid());
    project_ = QString::fromStdString(test::make_test_project(dir_.path().toStdString(), "tiny"));
    window_ = std::make_unique<studio::MainWindow>();
    studio::ProjectContext& c = window_->context();
    QVERIFY(c.openProject(project_));
    QTRY_VERIFY_WITH_TIMEOUT(test::all_stats_ready(c.model()), 15000);
    QVERIFY(wait_job(c, c.startRun(QStringLiteral("uniform-w4"))));
    QTRY_VERIFY_WITH_TIMEOUT(c.runs().size() == 2 && !c.runHistory().isLoading(), 10000);
    for (const ui::RunRow& r : c.runs())
      if (r.recipe == QLatin1String("uniform-w4")) run_id_ = r.id;
    QVERIFY(run_id_ > 0);
  }
  void cleanupTestCase() { window_.reset(); }

  void runRecordsItsEstimate() {
    studio::ProjectContext& c = window_->context();
    const auto store = RunStore::open_existing(c.project().database_path.toStdString());
    const std::optional<RunRecord> run = store->get_run(run_id_);
    QVERIFY(run);
    // The estimate the context computes for the recipe now is the one recorded.
    const ui::ResourceEstimateRow est = c.estimateProjectRecipe(QStringLiteral("uniform-w4"));
    QVERIFY(est.valid);
    QCOMPARE(run->metric("estimate_seconds"), std::optional<double>(est.seconds));
    QCOMPARE(run->metric("estimate_peak_bytes"), std::optional<double>(double(est.peak_bytes)));
    QVERIFY(*run->metric("estimate_peak_bytes") > 0);
    // The baseline has no recipe, so no estimate.
    for (const RunInfo& r : store->list_runs())
      if (r.recipe_name == kBaselineRecipe)
        QVERIFY(!store->get_run(r.id)->metric("estimate_seconds"));
    QVERIFY(c.runEstimateReport(run_id_).startsWith(QStringLiteral("estimated ")));
    // The Runs table's duration cell says what was estimated and what it took.
    QTRY_VERIFY_WITH_TIMEOUT(!c.runHistory().isLoading(), 10000);
    ui::RunTableModel* model = window_->runsPanel()->runModel();
    const int row = model->rowOfRun(run_id_);
    QVERIFY(row >= 0);
    const QString tip =
        model->index(row, ui::RunTableModel::Duration).data(Qt::ToolTipRole).toString();
    QVERIFY2(tip.startsWith(QStringLiteral("estimated ")) && tip.contains(QStringLiteral("took")),
             qPrintable(tip));
  }

  void exportReportInEveryFormat() {
    studio::ProjectContext& c = window_->context();
    QVERIFY(window_->exportReportAction()->isEnabled());
    const QString html = dir_.filePath(QStringLiteral("out/report.html"));
    QDir().mkpath(dir_.filePath(QStringLiteral("out")));
    QVERIFY(wait_job(c, c.startExportReport(html)));
    const QByteArray h = read_all(html);
    QVERIFY(h.startsWith("<!DOCTYPE html>"));
    QVERIFY(h.contains("uniform-w4"));

    const QString md = dir_.filePath(QStringLiteral("out/report.md"));
    QVERIFY(wait_job(c, c.startExportReport(md)));
    QVERIFY(read_all(md).contains("uniform-w4"));
    const QString csv = dir_.filePath(QStringLiteral("out/report.csv"));
    QVERIFY(wait_job(c, c.startExportReport(csv)));
    QVERIFY(read_all(csv).contains("uniform-w4"));

    const QString pdf = dir_.filePath(QStringLiteral("out/report.pdf"));
    QVERIFY(wait_job(c, c.startExportReport(pdf)));
    const QByteArray p = read_all(pdf);
    QVERIFY(p.startsWith("%PDF-"));
    QVERIFY(p.trimmed().endsWith("%%EOF"));
    QVERIFY2(p.size() > 20000, qPrintable(QString::number(p.size())));  // text and plots
    QVERIFY(p.count("/Type /Page") >= 3);    // the page tree and at least two pages
    QVERIFY(p.contains("/Subtype /Image"));  // the plots, rendered from the report's SVG
    QVERIFY(!QFileInfo::exists(pdf + QStringLiteral(".part")));

    // An extension no writer knows starts nothing.
    QCOMPARE(c.startExportReport(dir_.filePath(QStringLiteral("out/report.docx"))), 0);
    QVERIFY(test::log_contains(c, QStringLiteral("report.docx")));
  }

  // File ▸ Export Compressed Model as a compressed-tensors checkpoint: read back through
  // MCW's reader, its layers decode to the run's values rounded to f16 (the scales'
  // dtype), so it evaluates to the run's perplexity within that rounding; recorded as an
  // artifact, the intermediate MCW directory gone.
  void exportModelAsCompressedTensors() {
    studio::ProjectContext& c = window_->context();
    const QString out = dir_.filePath(QStringLiteral("exported-ct"));
    QVERIFY(wait_job(c, c.startExportModel(run_id_, out, true)));
    QVERIFY(!QFileInfo::exists(out + QStringLiteral(".mcw-compressed")));
    const ModelFile file = open_model_file(out.toStdString());
    int packed = 0;
    for (const Tensor& t : file.tensors) packed += t.dtype() == DType::Packed;
    QVERIFY(packed > 0);
    const ProjectRunInputs in = load_project_run_inputs(project_.toStdString());
    const EvalResult e = evaluate(load_llama(file), in.evaluation_tokens, in.eval);
    const auto store = RunStore::open_existing(in.database_path);
    const std::optional<RunRecord> run = store->get_run(run_id_);
    const double recorded = *run->metric("perplexity");
    QVERIFY2(std::abs(e.perplexity - recorded) <= 1e-3 * recorded,
             qPrintable(QString("%1 vs %2").arg(e.perplexity).arg(recorded)));
    bool found = false;
    for (const Artifact& a : run->artifacts)
      found |= a.kind == "model-compressed-tensors" &&
               a.path == (std::filesystem::path(out.toStdString()) / "model.safetensors").string();
    QVERIFY(found);
  }

  void exportModelReevaluatesToTheRunsPerplexity_data() {
    QTest::addColumn<QString>("name");
    QTest::addColumn<QString>("kind");
    QTest::newRow("hf") << QStringLiteral("exported-hf") << QStringLiteral("model-hf");
    QTest::newRow("gguf") << QStringLiteral("exported.gguf") << QStringLiteral("model-gguf");
  }
  void exportModelReevaluatesToTheRunsPerplexity() {
    QFETCH(QString, name);
    QFETCH(QString, kind);
    studio::ProjectContext& c = window_->context();
    ui::Selection s = c.selection();
    s.run_id = run_id_;
    c.setSelection(s);
    QVERIFY(window_->exportModelAction()->isEnabled());

    const QString out = dir_.filePath(name);
    QVERIFY(wait_job(c, c.startExportModel(run_id_, out)));

    // Reopened from disk, evaluated as the run was: the same perplexity.
    const ProjectRunInputs in = load_project_run_inputs(project_.toStdString());
    const ModelFile file = open_model_file(out.toStdString());
    const LlamaModel model = load_llama(file);
    const EvalResult e = evaluate(model, in.evaluation_tokens, in.eval);
    const auto store = RunStore::open_existing(in.database_path);
    const std::optional<RunRecord> run = store->get_run(run_id_);
    const double recorded = *run->metric("perplexity");
    QVERIFY2(
        std::abs(e.perplexity - recorded) <= 1e-6 * recorded,
        qPrintable(QString("%1 vs %2").arg(e.perplexity, 0, 'g', 17).arg(recorded, 0, 'g', 17)));
    // Not the uncompressed model's: the export is compressed.
    const EvalResult base = evaluate(in.base, in.evaluation_tokens, in.eval);
    QVERIFY(std::abs(base.perplexity - e.perplexity) > 1e-6 * recorded);

    // Recorded as an artifact of the run, hashed as written (a compressed HF export is
    // streamed into per-block shards: its index is the artifact).
    const std::string weights =
        kind == QLatin1String("model-hf")
            ? (std::filesystem::path(out.toStdString()) / "model.safetensors.index.json").string()
            : out.toStdString();
    bool found = false;
    for (const Artifact& a : run->artifacts)
      if (a.kind == kind.toStdString() && a.path == weights) {
        found = true;
        QCOMPARE(a.bytes, uint64_t(std::filesystem::file_size(weights)));
        const QByteArray bytes = read_all(QString::fromStdString(weights));
        Sha256 h;
        h.update(bytes.constData(), size_t(bytes.size()));
        QCOMPARE(a.sha256, to_hex(h.finish()));
      }
    QVERIFY(found);
    if (kind == QLatin1String("model-hf")) {  // the llama2.c source's tokenizer, copied
      QCOMPARE(read_all(out + QStringLiteral("/tokenizer.bin")),
               read_all(dir_.filePath(QStringLiteral("models/tokenizer.bin"))));
      // The packed layers decode to exactly the weights the run evaluated.
      const std::string packed_file =
          (std::filesystem::path(out.toStdString()) / kPackedFileName).string();
      const std::vector<CompressedTensor> packed = read_packed_safetensors(packed_file);
      QVERIFY(!packed.empty());
      for (const CompressedTensor& t : packed) {
        const Tensor* w = file.find(t.name);
        QVERIFY2(w, t.name.c_str());
        QVERIFY2(w->to_f32() == t.dequantize().to_f32(), t.name.c_str());
      }
      bool recorded_packed = false;
      for (const Artifact& a : run->artifacts)
        recorded_packed |= a.kind == "packed-safetensors" && a.path == packed_file;
      QVERIFY(recorded_packed);
    }
  }

  // An export that was stopped after its first block (here by a stand-in that ends the run
  // there, as a kill or a cancel would) leaves <out>.partial; exporting the run to the same
  // place again goes on from it, says so, and gives the model the run evaluated.
  void aStoppedExportGoesOnWhereItStopped() {
    studio::ProjectContext& c = window_->context();
    const QString out = dir_.filePath(QStringLiteral("resumed-hf"));
    const ProjectRunInputs in = load_project_run_inputs(project_.toStdString());
    const auto store = RunStore::open_existing(in.database_path);
    const std::optional<RunRecord> run = store->get_run(run_id_);
    const Recipe recipe = parse_recipe(run->info.recipe_text, "run");
    CompressOptions co;  // as the studio's export sets them
    co.calib_window = std::min(co.calib_window, in.base.cfg.max_seq_len);
    struct Stopped {};
    co.block_done = [](const BlockDone& d, CompressionResult&) {
      if (d.resumable) throw Stopped{};
    };
    {
      CompressToDirectory first(in.file, in.base, recipe, in.calibration_tokens, co, out.toStdString(),
                                CompressToDirectory::Resume::IfPossible, {});
      bool stopped = false;
      try {
        first.compress();
      } catch (const Stopped&) {
        stopped = true;
      }
      QVERIFY(stopped);
    }
    QVERIFY(QFileInfo::exists(out + QStringLiteral(".partial/.checkpoint.json")));

    QVERIFY2(wait_job(c, c.startExportModel(run_id_, out)), qPrintable(c.logLines().mid(c.logLines().size() - 3).join(QLatin1Char('\n'))));
    QVERIFY(test::log_contains(c, QStringLiteral("resuming the export")));
    // Jobs report the memory they needed (the process's anonymous peak while they ran).
    const QRegularExpression peak(QStringLiteral("Export model of run \\d+: finished in [0-9.]+ s, "
                                                 "peak memory [0-9.]+ (B|KiB|MiB|GiB) anonymous"));
    bool reported = false;
    for (const QString& line : c.logLines()) reported |= peak.match(line).hasMatch();
    QVERIFY(reported);
    QVERIFY(!QFileInfo::exists(out + QStringLiteral(".partial")));
    const EvalResult e = evaluate(load_llama(out.toStdString()), in.evaluation_tokens, in.eval);
    const double recorded = *run->metric("perplexity");
    QVERIFY2(std::abs(e.perplexity - recorded) <= 1e-6 * recorded,
             qPrintable(QString("%1 vs %2").arg(e.perplexity, 0, 'g', 17).arg(recorded, 0, 'g', 17)));
  }

  // A llama.cpp file type: the run's weights re-encoded as Q8_0 (rows of whole 32-value
  // blocks; the rest as llama.cpp's fallbacks), no intermediate left, and the export's
  // error against the run's weights logged; perplexity within Q8_0's rounding of the run's.
  void exportAsGgufQ8_0() {
    studio::ProjectContext& c = window_->context();
    const QString out = dir_.filePath(QStringLiteral("q8.gguf"));
    QVERIFY2(wait_job(c, c.startExportModel(run_id_, out, false, QStringLiteral("Q8_0"))),
             qPrintable(c.logLines().mid(c.logLines().size() - 3).join(QLatin1Char('\n'))));
    QVERIFY(test::log_contains(c, QStringLiteral("GGUF Q8_0: ")));
    QVERIFY(test::log_contains(c, QStringLiteral("the project has no calibration text")));
    QVERIFY(!QFileInfo::exists(out + QStringLiteral(".mcw-compressed")));
    const GGUFFile g = read_gguf(out.toStdString());
    QCOMPARE(g.get_u64("general.file_type"), uint64_t(7));
    const ProjectRunInputs in = load_project_run_inputs(project_.toStdString());
    const EvalResult e = evaluate(load_llama(out.toStdString()), in.evaluation_tokens, in.eval);
    const auto store = RunStore::open_existing(in.database_path);
    const double recorded = *store->get_run(run_id_)->metric("perplexity");
    QVERIFY2(std::abs(e.perplexity - recorded) <= 0.01 * recorded,
             qPrintable(QString("%1 vs %2").arg(e.perplexity).arg(recorded)));

    // A type llama-quantize does not know: refused before any work, nothing written.
    const QString bad = dir_.filePath(QStringLiteral("bad.gguf"));
    QCOMPARE(c.startExportModel(run_id_, bad, false, QStringLiteral("q4_k_m")), 0);
    QVERIFY(test::log_contains(c, QStringLiteral("GGUF type 'q4_k_m' is not one of")));
    QVERIFY(!QFileInfo::exists(bad));
  }

  // With calibration text in the project, the linears a K-quant file re-quantises get GPTQ
  // on the block grid with it, each logged with its output error beside the imatrix one.
  void exportAsGgufWithCalibrationUsesGptq() {
    studio::ProjectContext& c = window_->context();
    const Project original = load_project(project_.toStdString());
    Project p = original;
    p.calibration_path = dir_.filePath(QStringLiteral("data/eval.txt")).toStdString();
    save_project(p, project_.toStdString());
    const QString out = dir_.filePath(QStringLiteral("q4km.gguf"));
    const QString imx = dir_.filePath(QStringLiteral("q4km-imatrix.gguf"));
    const bool ok = wait_job(c, c.startExportModel(run_id_, out, false, QStringLiteral("Q4_K_M")));
    const bool ok_imx = wait_job(
        c, c.startExportModel(run_id_, imx, false, QStringLiteral("Q4_K_M"), QStringLiteral("imatrix")));
    const int bad = c.startExportModel(run_id_, dir_.filePath(QStringLiteral("x.gguf")), false,
                                       QStringLiteral("Q4_K_M"), QStringLiteral("awq"));
    save_project(original, project_.toStdString());
    QVERIFY2(ok && ok_imx, qPrintable(c.logLines().mid(c.logLines().size() - 3).join(QLatin1Char('\n'))));
    QVERIFY(test::log_contains(c, QStringLiteral("GPTQ re-quantised ")));
    QVERIFY(test::log_contains(c, QStringLiteral(": blk.0.attn_q.weight, output error ")));
    QVERIFY(test::log_contains(c, QStringLiteral("weighted by the importance matrix")));
    QCOMPARE(bad, 0);
    QVERIFY(test::log_contains(c, QStringLiteral("GGUF calibration 'awq' is not one of gptq, imatrix, none")));
    QVERIFY(!QFileInfo::exists(out + QStringLiteral(".mcw-compressed")));
    QCOMPARE(read_gguf(out.toStdString()).get_u64("general.file_type"), uint64_t(15));
    QCOMPARE(read_gguf(imx.toStdString()).get_u64("general.file_type"), uint64_t(15));
  }

  void exportOfAnUnknownRunFails() {
    studio::ProjectContext& c = window_->context();
    const int id = c.startExportModel(9999, dir_.filePath(QStringLiteral("none.gguf")));
    QVERIFY(id > 0);
    QTRY_COMPARE_WITH_TIMEOUT(job_state(c, id), int(ui::JobState::Failed), kJobTimeoutMs);
    QVERIFY(test::log_contains(c, QStringLiteral("no run 9999")));
    QVERIFY(!QFileInfo::exists(dir_.filePath(QStringLiteral("none.gguf"))));
  }

 private:
  QTemporaryDir dir_;
  QString project_;
  std::unique_ptr<studio::MainWindow> window_;
  qint64 run_id_ = 0;
};

QTEST_MAIN(StudioExportTest)
#include "test_studio_export.moc"
