#include "app/studio/project_context.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QSettings>

#include "app/image_io/qt_image_loader.h"
#include "app/studio/model_data.h"
#include "app/studio/project_summary.h"
#include "engine/core/error.h"
#include "engine/eval/perplexity.h"
#include "engine/model/llama_config.h"
#include "engine/onnx/onnx_layers.h"
#include "engine/runs/onnx_project_runner.h"
#include "engine/runs/project_runner.h"

namespace mcw::studio {

static constexpr int kMaxRecent = 10;
static constexpr int kMaxLogLines = 5000;
static const char* kRecentKey = "recentProjects";

ProjectContext::ProjectContext(QObject* parent) : QObject(parent) {
#ifdef MCW_SOURCE_DIR
  demo_dirs_ << QStringLiteral(MCW_SOURCE_DIR "/projects");
  preset_dirs_ << QStringLiteral(MCW_SOURCE_DIR "/assets/recipes");
#endif
  demo_dirs_ << QCoreApplication::applicationDirPath() + QStringLiteral("/../share/mcw/projects");
  preset_dirs_ << QCoreApplication::applicationDirPath() + QStringLiteral("/../share/mcw/recipes");
  connect(&bridge_, &EngineBridge::jobUpdated, this, &ProjectContext::onJobUpdated);
  connect(&bridge_, &EngineBridge::logMessage, this, &ProjectContext::log);
  connect(&run_history_, &RunHistory::updated, this, [this](qint64 id) {
    notify([id](ui::IProjectViewer* v) { v->onRunUpdated(id); });
    updateAssignmentPrediction();  // the band is fitted on the finished runs
  });
  connect(&run_history_, &RunHistory::failed, this, &ProjectContext::onRunStoreFailed);
}

ProjectContext::~ProjectContext() { bridge_.cancelAll(); }

void ProjectContext::addViewer(ui::IProjectViewer* v) {
  if (std::find(viewers_.begin(), viewers_.end(), v) == viewers_.end()) viewers_.push_back(v);
}

void ProjectContext::removeViewer(ui::IProjectViewer* v) {
  viewers_.erase(std::remove(viewers_.begin(), viewers_.end(), v), viewers_.end());
}

QList<ui::JobProgress> ProjectContext::jobs() const {
  QList<ui::JobProgress> out;
  for (const auto& [id, j] : jobs_) out.push_back(j);
  return out;
}

void ProjectContext::log(const QString& line) {
  const QString stamped =
      QDateTime::currentDateTime().toString(QStringLiteral("[HH:mm:ss] ")) + line;
  log_.push_back(stamped);
  if (log_.size() > kMaxLogLines) log_.removeFirst();
  notify([&](ui::IProjectViewer* v) { v->onLogMessage(stamped); });
}

QStringList ProjectContext::recentProjects() const {
  return QSettings().value(kRecentKey).toStringList();
}

void ProjectContext::addRecent(const QString& path) {
  const QString abs = QFileInfo(path).absoluteFilePath();
  QStringList list = recentProjects();
  list.removeAll(abs);
  list.prepend(abs);
  while (list.size() > kMaxRecent) list.removeLast();
  QSettings().setValue(kRecentKey, list);
}

QStringList ProjectContext::demoProjects() const {
  QStringList out;
  for (const QString& d : demo_dirs_) {
    const QDir dir(d);
    for (const QString& f : dir.entryList({QStringLiteral("*.mcwproj")}, QDir::Files, QDir::Name))
      out << QFileInfo(dir.filePath(f)).canonicalFilePath();
  }
  out.removeDuplicates();
  return out;
}

bool ProjectContext::openProject(const QString& path) {
  Project p;
  try {
    p = load_project(path.toStdString());
  } catch (const Error& e) {
    log(QStringLiteral("error: ") + QString::fromStdString(e.what()));
    return false;
  }
  project_ = std::move(p);
  project_file_ = QFileInfo(path).absoluteFilePath();
  dirty_ = false;
  selection_ = {};
  addRecent(project_file_);
  refreshProject();
  log(QStringLiteral("opened project %1").arg(project_file_));
  for (const QString& problem : summary_.problems) log(QStringLiteral("problem: ") + problem);
  loadModel(QString::fromStdString(project_->model_path));
  return true;
}

void ProjectContext::refreshProject() {
  summary_ = project_ ? summarize_project(*project_, project_file_, dirty_) : ui::ProjectSummary{};
  updateRunSource();
  notify([](ui::IProjectViewer* v) { v->onProjectLoaded(); });
}

void ProjectContext::newProject(const QString& name) {
  project_ = Project{};
  project_->name = name.toStdString();
  project_file_.clear();
  dirty_ = true;
  selection_ = {};
  refreshProject();
  loadModel({});
}

bool ProjectContext::saveProject() {
  if (!project_ || project_file_.isEmpty()) return false;
  return saveProjectAs(project_file_);
}

bool ProjectContext::saveProjectAs(const QString& path) {
  if (!project_) return false;
  try {
    save_project(*project_, path.toStdString());
  } catch (const Error& e) {
    log(QStringLiteral("error: ") + QString::fromStdString(e.what()));
    return false;
  }
  // Reload so that paths and the default database resolve against the new place.
  project_ = load_project(path.toStdString());
  project_file_ = QFileInfo(path).absoluteFilePath();
  dirty_ = false;
  addRecent(project_file_);
  refreshProject();
  log(QStringLiteral("saved project %1").arg(project_file_));
  return true;
}

void ProjectContext::closeProject() {
  project_.reset();
  project_file_.clear();
  dirty_ = false;
  selection_ = {};
  refreshProject();
  loadModel({});
}

void ProjectContext::openModel(const QString& path) {
  const QString abs = QFileInfo(path).absoluteFilePath();
  if (project_) {
    project_->model_path = abs.toStdString();
    dirty_ = true;
    refreshProject();
  }
  loadModel(abs);
}

void ProjectContext::loadModel(const QString& path) {
  ++model_generation_;
  bridge_.cancel(model_job_);
  bridge_.cancel(stats_job_);
  bridge_.cancel(sensitivity_job_);
  bridge_.cancel(scan_job_);
  bridge_.cancel(latency_job_);
  clearModelDiff();  // its A is gone
  model_file_.reset();
  shape_.reset();
  onnx_layers_.clear();
  model_ = {};
  packed_parameters_pending_.clear();
  model_.path = path;
  model_.loading = !path.isEmpty();
  sensitivity_ = {};
  bridge_.cancel(heatmap_job_);
  heatmap_ = {};
  ++heatmap_generation_;
  model_fingerprint_.clear();
  notify([](ui::IProjectViewer* v) { v->onModelLoaded(); });
  sensitivityReplaced();
  if (path.isEmpty()) return;

  const int gen = model_generation_;
  model_job_ = bridge_.start(QStringLiteral("Open model"), [this, gen, path](JobContext& job) {
    job.progress(0, QStringLiteral("open"), path);
    try {
      auto opened = std::make_shared<OpenedModel>(open_model_for_view(path.toStdString()));
      std::vector<std::string> layers;  // an ONNX graph's layers: the sensitivity grid's rows
      if (opened->file->format == ModelFormat::ONNX)
        for (const OnnxLayer& l : onnx_layers(read_onnx(path.toStdString())))
          layers.push_back(l.name);
      job.post([this, gen, opened, layers] {
        if (gen != model_generation_) return;
        model_file_ = opened->file;
        onnx_layers_ = layers;
        model_ = std::move(opened->summary);
        try {  // shapes for recipe checks and estimates; other architectures get none
          const LlamaConfig cfg = llama_config_from(*model_file_);
          shape_ = model_shape(cfg);
          model_context_ = cfg.max_seq_len;
        } catch (const Error&) {
          shape_.reset();
        }
        notify([](ui::IProjectViewer* v) { v->onModelLoaded(); });
        startStatistics();
        loadSensitivity();
      });
    } catch (const Error& e) {
      const QString msg = QString::fromStdString(e.what());
      job.post([this, gen, msg] {
        if (gen != model_generation_) return;
        model_.loading = false;
        model_.error = msg;
        notify([](ui::IProjectViewer* v) { v->onModelLoaded(); });
      });
      throw;
    }
  });
}

void ProjectContext::startStatistics() {
  const int gen = model_generation_;
  std::shared_ptr<const ModelFile> file = model_file_;
  stats_job_ = bridge_.start(QStringLiteral("Tensor statistics"), [this, gen, file](JobContext& job) {
    const size_t n = file->tensors.size();
    for (size_t i = 0; i < n; ++i) {
      job.cancel().throw_if_cancelled();
      const Tensor& t = file->tensors[i];
      if (!t.readable()) continue;  // a type MCW lists but does not decode
      const ui::TensorStatsRow row = to_stats_row(tensor_stats(t, &job.cancel()));
      job.post([this, gen, i, row] {
        if (gen != model_generation_ || qsizetype(i) >= model_.tensors.size()) return;
        model_.tensors[qsizetype(i)].stats = row;
        notify([i](ui::IProjectViewer* v) { v->onTensorStatsUpdated(int(i)); });
      });
      job.progress(double(i + 1) / double(n), QStringLiteral("stats"),
                   QString::fromStdString(t.name()));
    }
  });
}

void ProjectContext::setSelection(const ui::Selection& s) {
  selection_ = s;
  notify([](ui::IProjectViewer* v) { v->onSelectionChanged(); });
}

int ProjectContext::startEvaluate() {
  if (!project_) {
    log(QStringLiteral("error: Evaluate needs an open project"));
    return 0;
  }
  // The path `mcw run` and the Runs table take (model, tokenizer, texts and evaluation
  // settings of the saved project file), so that one project has one perplexity.
  if (project_file_.isEmpty()) {
    log(QStringLiteral("error: save the project before evaluating (Evaluate reads the saved "
                       "model, texts and settings, as runs do)"));
    return 0;
  }
  if (dirty_)
    log(QStringLiteral("note: the project has unsaved changes; Evaluate uses the saved model, "
                       "datasets and evaluation settings"));
  const std::string file = project_file_.toStdString();
  const QString name = QString::fromStdString(project_->name);
  return bridge_.start(QStringLiteral("Evaluate"), [file, name](JobContext& job) {
    job.progress(0, QStringLiteral("load"), QString::fromStdString(file));
    const ProjectRunInputs in = load_project_run_inputs(file, qt_load_image);
    job.cancel().throw_if_cancelled();
    const ProgressFn progress = [&job](const ProgressEvent& e) {
      job.progress(e.fraction, QString::fromStdString(e.stage), QString::fromStdString(e.message));
    };
    if (in.onnx) {  // an OCR model: its score on the evaluation set
      const OnnxProjectInputs& o = *in.onnx;
      const OnnxRunner runner(o.model);
      size_t done = 0;
      const size_t n = o.evaluation.size();
      auto step = [&](auto&&...) {
        job.cancel().throw_if_cancelled();
        job.progress(double(++done) / double(n), QStringLiteral("eval"), {});
      };
      if (o.evaluation.kind == OcrSet::Lines) {
        const OcrScore s =
            score_recogniser(runner, o.evaluation, *o.keys, o.images, SIZE_MAX, step);
        job.log(QStringLiteral("Evaluate %1: CER %2 % (%3 errors / %4 characters), %5 of %6 "
                               "lines exact")
                    .arg(name)
                    .arg(100 * s.cer(), 0, 'f', 2)
                    .arg(s.errors)
                    .arg(s.chars)
                    .arg(s.exact)
                    .arg(s.lines));
      } else {
        const DetScore s = score_detector(runner, o.evaluation, o.images, SIZE_MAX, step);
        job.log(QStringLiteral("Evaluate %1: box recall %2 %, precision %3 % (%4 boxes, %5 found)")
                    .arg(name)
                    .arg(100 * s.recall(), 0, 'f', 1)
                    .arg(100 * s.precision(), 0, 'f', 1)
                    .arg(s.truths)
                    .arg(s.found));
      }
      return;
    }
    const EvalResult r =
        evaluate(in.base, in.evaluation_tokens, in.eval, nullptr, progress, &job.cancel());
    job.log(QStringLiteral("Evaluate %1: perplexity %2 (%3 nats/token) over %4 scored of %5 "
                           "tokens (window %6, stride %7), %8 tokens/s")
                .arg(name)
                .arg(r.perplexity, 0, 'f', 4)
                .arg(r.nll, 0, 'f', 4)
                .arg(r.scored)
                .arg(qint64(in.evaluation_tokens.size()))
                .arg(in.eval.window)
                .arg(in.eval.stride)
                .arg(r.tokens_per_second, 0, 'f', 0));
  });
}

void ProjectContext::cancelJob(int id) { bridge_.cancel(id); }

HeartbeatStats ProjectContext::heartbeatStats(int job_id) const {
  const auto it = heartbeat_stats_.find(job_id ? job_id : last_finished_job_);
  return it == heartbeat_stats_.end() ? HeartbeatStats{} : it->second;
}

void ProjectContext::onJobUpdated(const ui::JobProgress& job) {
  jobs_[job.id] = job;
  if (job.state == ui::JobState::Running) {
    heartbeat_.jobStarted(job.id);
  } else {
    const HeartbeatStats& s = heartbeat_stats_[job.id] = heartbeat_.jobFinished(job.id, job.name);
    last_finished_job_ = job.id;
    // Queued, so that the line follows the job's own last line.
    if (s.meaningful())
      QMetaObject::invokeMethod(
          this, [this, line = QStringLiteral("UI heartbeat: ") + s.describe()] { log(line); },
          Qt::QueuedConnection);
  }
  notify([&](ui::IProjectViewer* v) { v->onJobUpdated(job); });
}

}  // namespace mcw::studio
