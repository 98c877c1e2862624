// ProjectContext's sensitivity side: the cached grid of the open model (read when it
// loads) and the engine's scan as a job, its cells reaching the grid one by one as the
// scan's worker threads finish them.
#include <QFileInfo>

#include "app/image_io/qt_image_loader.h"
#include "app/studio/project_context.h"
#include "app/studio/sensitivity_data.h"
#include "engine/core/error.h"
#include "engine/ocr/ocr_eval.h"
#include "engine/runs/fingerprint.h"
#include "engine/runs/onnx_project_runner.h"
#include "engine/runs/project_runner.h"
#include "engine/search/layer_latency.h"
#include "engine/search/sensitivity_scan.h"

namespace mcw::studio {

static QString q(const std::string& s) { return QString::fromStdString(s); }

bool ProjectContext::sensitivityScanAvailable() const {
  // The scan compresses llama-family linears (shape_ is set for those only) or an ONNX
  // graph's layers.
  return project_ && model_file_ && (shape_ || !onnx_layers_.empty()) &&
         !bridge_.isRunning(scan_job_);
}

void ProjectContext::layOutScanGrid(const std::vector<std::string>& layers) {
  // The whole grid at once, pending, so that cells fill in without the grid moving.
  std::vector<std::string> settings;
  for (const ScanSetting& s : default_scan_settings()) settings.push_back(s.name);
  ensure_sensitivity_axes(sensitivity_, layers, settings, layerOrder());
  sensitivityReplaced();
  last_scan_ = {};
}

std::vector<std::string> ProjectContext::layerOrder() const {
  return shape_ ? shape_->tensor_names : onnx_layers_;
}

int ProjectContext::startSensitivityScan() {
  if (!shape_ && !onnx_layers_.empty() && project_ && model_file_)
    return startOnnxSensitivityScan();
  if (!canStartLinearJob(scan_job_, QStringLiteral("the sensitivity scan"),
                         QStringLiteral("a sensitivity scan"), QStringLiteral("scanning")))
    return 0;
  bridge_.cancel(sensitivity_job_);  // the scan reports the cached cells itself
  std::vector<std::string> layers;
  for (const LinearShape& l : shape_->linears) layers.push_back(l.name);
  layOutScanGrid(layers);
  const int gen = model_generation_;
  const std::string file = project_file_.toStdString();
  scan_job_ = bridge_.start(QStringLiteral("Sensitivity scan"), [this, gen, file](JobContext& job) {
    job.progress(0, QStringLiteral("load"), q(file));
    const ProjectRunInputs in = load_project_run_inputs(file);
    job.cancel().throw_if_cancelled();
    const bool calibration = !in.calibration_tokens.empty();
    if (!calibration)
      job.log(
          QStringLiteral("sensitivity scan: the project has no calibration text; measuring "
                         "on its evaluation text"));
    const std::unique_ptr<RunStore> store = RunStore::open(in.database_path);
    job.post([this, gen, fp = in.fingerprint] {
      if (gen == model_generation_) model_fingerprint_ = fp;
    });
    SensitivityOptions opt;
    opt.compress.calib_window = std::min(opt.compress.calib_window, in.base.cfg.max_seq_len);
    // Called from the scan's worker threads (one at a time): each cell goes to the UI
    // thread as it is, never waiting for it.
    opt.on_cell = [this, gen, &job](const SensitivityCell& c) {
      job.post([this, gen, c] {
        if (gen != model_generation_) return;
        addScanCell(c);
      });
    };
    SensitivityScan scan(in.base, in.fingerprint,
                         calibration ? in.calibration_tokens : in.evaluation_tokens, opt);
    const ProgressFn progress = [&job](const ProgressEvent& e) {
      job.progress(e.fraction, QStringLiteral("scan"), q(e.message.empty() ? e.item : e.message));
    };
    const SensitivityTable t = scan.run(store.get(), progress, &job.cancel());
    const ScanSummary summary{int(t.cells.size()), int(t.cached), int(t.computed)};
    job.post([this, summary] { last_scan_ = summary; });
    job.log(QStringLiteral("sensitivity scan: %1 cells (%2 layers × %3 settings), %4 cached, "
                           "%5 measured over %6 windows of %7 tokens")
                .arg(t.cells.size())
                .arg(t.layers.size())
                .arg(t.settings.size())
                .arg(t.cached)
                .arg(t.computed)
                .arg(t.windows)
                .arg(t.window));
  });
  announceJob(scan_job_);
  return scan_job_;
}

// An ONNX project's scan (onnx_sensitivity.h): every layer alone at each setting, measured on
// the first kOnnxScanImages images of the evaluation set, cells cached in the run store.
int ProjectContext::startOnnxSensitivityScan() {
  constexpr size_t kOnnxScanImages = 16;  // mcw sensitivity's --lines default
  if (bridge_.isRunning(scan_job_)) {
    log(QStringLiteral("error: a sensitivity scan is already running"));
    return 0;
  }
  if (!savedProjectShowsModel(QStringLiteral("scanning"))) return 0;
  bridge_.cancel(sensitivity_job_);  // the scan reports the cached cells itself
  layOutScanGrid(onnx_layers_);
  const int gen = model_generation_;
  const std::string file = project_file_.toStdString();
  scan_job_ = bridge_.start(QStringLiteral("Sensitivity scan"), [this, gen, file](JobContext& job) {
    job.progress(0, QStringLiteral("load"), q(file));
    const ProjectRunInputs in = load_project_run_inputs(file, qt_load_image);
    const OnnxProjectInputs& o = *in.onnx;
    const std::vector<OnnxInputs> inputs =
        ocr_calibration_inputs(o.model, o.evaluation, kOnnxScanImages, o.images);
    job.cancel().throw_if_cancelled();
    const std::unique_ptr<RunStore> store = RunStore::open(in.database_path);
    job.post([this, gen, fp = in.fingerprint] {
      if (gen == model_generation_) model_fingerprint_ = fp;
    });
    OnnxSensitivityOptions opt;
    opt.store = store.get();
    opt.fingerprint = in.fingerprint;
    opt.on_cell = [this, gen, &job](const OnnxSensitivityCell& c) {
      job.post([this, gen, c] {
        if (gen == model_generation_) addOnnxScanCell(c);
      });
    };
    const ProgressFn progress = [&job](const ProgressEvent& e) {
      job.progress(e.fraction, QStringLiteral("scan"), q(e.item.empty() ? e.message : e.item));
    };
    const OnnxSensitivity s =
        onnx_sensitivity(o.model, default_scan_settings(), inputs, progress, &job.cancel(), opt);
    const int cells = int(s.value.size()), cached = int(s.cached);
    job.post([this, cells, cached] { last_scan_ = {cells, cached, cells - cached}; });
    job.log(QStringLiteral("sensitivity scan: %1 cells (%2 layers × %3 settings), %4 cached, "
                           "%5 measured on %6 images (%7)")
                .arg(cells)
                .arg(s.layers.size())
                .arg(s.settings.size())
                .arg(cached)
                .arg(cells - cached)
                .arg(inputs.size())
                .arg(s.kl ? QStringLiteral("KL of the character probabilities")
                          : QStringLiteral("relative error of the output map")));
  });
  announceJob(scan_job_);
  return scan_job_;
}

void ProjectContext::addOnnxScanCell(const OnnxSensitivityCell& c) {
  const std::vector<std::string> order = layerOrder();
  bool reshaped_value = false, reshaped = false;
  const auto [row, col] = put_sensitivity(
      sensitivity_, {c.layer, c.setting, c.kl ? "kl" : "map", c.value}, order, &reshaped_value);
  put_sensitivity(sensitivity_, {c.layer, c.setting, "bits", double(c.bits)}, order, &reshaped);
  cellPut(row, col, reshaped || reshaped_value);
}

bool ProjectContext::canStartLinearJob(int job, const QString& what, const QString& running,
                                       const QString& doing) {
  if (!project_ || !model_file_ || !shape_) {
    log(QStringLiteral("error: %1 needs an open project with a llama-family model").arg(what));
    return false;
  }
  if (bridge_.isRunning(job)) {
    log(QStringLiteral("error: %1 is already running").arg(running));
    return false;
  }
  return savedProjectShowsModel(doing);
}

void ProjectContext::announceJob(int id) {
  // The job's first update went out before its id was known here: say it again, so that
  // viewers asking whether it runs now hear yes.
  if (const auto it = jobs_.find(id); it != jobs_.end()) {
    const ui::JobProgress job = it->second;
    notify([&job](ui::IProjectViewer* v) { v->onJobUpdated(job); });
  }
}

bool ProjectContext::savedProjectShowsModel(const QString& what) {
  if (project_file_.isEmpty()) {
    log(QStringLiteral("error: save the project before %1 (results are stored beside the "
                       "project file)")
            .arg(what));
    return false;
  }
  // The job reads the saved project (as runs do): it must name the model on screen, or its
  // results would land in another model's grid.
  try {
    const Project saved = load_project(project_file_.toStdString());
    if (QFileInfo(q(saved.model_path)) != QFileInfo(model_.path)) {
      log(QStringLiteral("error: save the project before %1: the saved project names another "
                         "model")
              .arg(what));
      return false;
    }
  } catch (const Error& e) {
    log(QStringLiteral("error: ") + q(e.what()));
    return false;
  }
  return true;
}

bool ProjectContext::latencyMeasureAvailable() const {
  return project_ && model_file_ && shape_ && !bridge_.isRunning(latency_job_);
}

int ProjectContext::startLatencyMeasure() {
  if (!canStartLinearJob(latency_job_, QStringLiteral("measuring layer latency"),
                         QStringLiteral("a latency measurement"),
                         QStringLiteral("measuring latency")))
    return 0;
  // The grid's settings (a scan's columns), else the ones a scan would take.
  std::vector<std::string> settings;
  for (const QString& s : sensitivity_.settings) settings.push_back(s.toStdString());
  if (settings.empty())
    for (const ScanSetting& s : default_scan_settings()) settings.push_back(s.name);
  SensitivityTable rows;  // the layers and settings to time
  for (const LinearShape& l : shape_->linears) {
    rows.layers.push_back(l.name);
    rows.layer_parameters.push_back(uint64_t(l.rows * l.cols));
    rows.layer_in_features.push_back(l.cols);
  }
  try {
    for (const std::string& s : settings) rows.settings.push_back(scan_setting_from_name(s));
  } catch (const Error& e) {
    log(QStringLiteral("error: ") + q(e.what()));
    return 0;
  }
  const int gen = model_generation_;
  const std::string file = project_file_.toStdString();
  latency_job_ = bridge_.start(
      QStringLiteral("Layer latency"), [this, gen, file, settings, rows](JobContext& job) {
        job.progress(0, QStringLiteral("load"), q(file));
        const ProjectRunInputs in = load_project_run_inputs(file);
        job.cancel().throw_if_cancelled();
        const std::unique_ptr<RunStore> store = RunStore::open(in.database_path);
        const ProgressFn progress = [&job](const ProgressEvent& e) {
          job.progress(e.fraction, QStringLiteral("latency"),
                       q(e.message.empty() ? e.item : e.message));
        };
        const std::vector<int32_t>& tokens =
            in.calibration_tokens.empty() ? in.evaluation_tokens : in.calibration_tokens;
        const LayerLatencyTable t = measure_layer_latency(in.base, rows, settings, tokens, {},
                                                          in.latency, {}, progress, &job.cancel());
        store_layer_latency(*store, in.fingerprint, t);
        job.log(QStringLiteral("layer latency: %1 layers × %2 settings on this machine; the "
                               "uncompressed model %3 ms/token")
                    .arg(t.layers.size())
                    .arg(settings.size())
                    .arg(t.model_ms_per_token, 0, 'f', 3));
        job.post([this, gen] {
          if (gen == model_generation_) loadSensitivity();  // the grid with its latency
        });
      });
  announceJob(latency_job_);
  return latency_job_;
}

void ProjectContext::addScanCell(const SensitivityCell& c) {
  const std::vector<std::string> order = layerOrder();
  bool reshaped_kl = false, reshaped = false;
  // The value first: a grid showing a proxy starts over as KL before the rest lands.
  const auto [row, col] =
      put_sensitivity(sensitivity_, {c.layer, c.setting, "kl", c.kl}, order, &reshaped_kl);
  put_sensitivity(sensitivity_, {c.layer, c.setting, "perplexity", c.perplexity}, order, &reshaped);
  put_sensitivity(sensitivity_, {c.layer, c.setting, "bits", double(c.bits)}, order, &reshaped);
  cellPut(row, col, reshaped || reshaped_kl);
}

void ProjectContext::addSensitivityResult(const SensitivityEntry& entry) {
  bool reshaped = false;
  const std::vector<std::string> order = layerOrder();
  const auto [row, col] = put_sensitivity(sensitivity_, entry, order, &reshaped);
  cellPut(row, col, reshaped);
}

void ProjectContext::cellPut(int row, int col, bool reshaped) {
  if (reshaped) return sensitivityReplaced();
  notify([row, col](ui::IProjectViewer* v) { v->onSensitivityCell(row, col); });
  updateAssignmentPrediction();
}

void ProjectContext::loadSensitivity() {
  sensitivity_ = {};
  sensitivity_.status = QStringLiteral("No sensitivity results for this model yet.");
  model_fingerprint_.clear();
  sensitivityReplaced();
  const QString db = summary_.database_path;
  if (!project_ || !model_file_ || db.isEmpty() || !QFileInfo::exists(db)) return;
  const int gen = model_generation_;
  const std::shared_ptr<const ModelFile> file = model_file_;
  const std::vector<std::string> order = layerOrder();
  sensitivity_job_ = bridge_.start(
      QStringLiteral("Sensitivity cache"), [this, gen, file, db, order](JobContext& job) {
        job.progress(0, QStringLiteral("fingerprint"), q(file->path));
        const std::string fp = model_fingerprint(*file);
        job.cancel().throw_if_cancelled();
        job.progress(0.5, QStringLiteral("read"), db);
        const auto store = RunStore::open_existing(db.toStdString());
        auto grid = std::make_shared<ui::SensitivityGrid>(
            sensitivity_grid(store->list_sensitivity(fp), order, latency_metric_key()));
        job.post([this, gen, grid, fp] {
          if (gen != model_generation_) return;
          model_fingerprint_ = fp;
          // A scan started since reports every cell itself, newer than this snapshot.
          if (bridge_.isRunning(scan_job_)) return;
          sensitivity_ = std::move(*grid);
          sensitivityReplaced();
        });
      });
}

}  // namespace mcw::studio
