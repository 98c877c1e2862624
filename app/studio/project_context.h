// The studio's one ProjectContext: owns the open project, the open model and its
// statistics, the job list, the log, the selection and the EngineBridge. Panels see it
// as ui::IProjectContext; MainWindow also uses the project-file actions below.
#pragma once
#include <QObject>
#include <QSet>
#include <QStringList>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "app/studio/engine_bridge.h"
#include "app/studio/heartbeat.h"
#include "app/studio/recipe_support.h"
#include "app/studio/run_history.h"
#include "engine/io/model_file.h"
#include "engine/project/project.h"
#include "engine/runs/run_store.h"
#include "engine/search/onnx_sensitivity.h"
#include "engine/search/recipe_prediction.h"
#include "engine/search/sensitivity_scan.h"
#include "widgets/project_context_api.h"

namespace mcw::studio {

// What the last sensitivity scan reported when it finished (all zero while none has).
struct ScanSummary {
  int cells = 0, cached = 0, computed = 0;
};

class ProjectContext : public QObject, public ui::IProjectContext {
  Q_OBJECT
 public:
  explicit ProjectContext(QObject* parent = nullptr);
  ~ProjectContext() override;

  // ui::IProjectContext
  void addViewer(ui::IProjectViewer* viewer) override;
  void removeViewer(ui::IProjectViewer* viewer) override;
  bool hasProject() const override { return project_.has_value(); }
  const ui::ProjectSummary& project() const override { return summary_; }
  const ui::ModelSummary& model() const override { return model_; }
  const ui::Selection& selection() const override { return selection_; }
  QList<ui::JobProgress> jobs() const override;
  QStringList logLines() const override { return log_; }
  QStringList recentProjects() const override;
  QStringList demoProjects() const override;
  bool openProject(const QString& path) override;
  void openModel(const QString& path) override;
  void setSelection(const ui::Selection& selection) override;
  int startEvaluate() override;
  void cancelJob(int id) override;
  // ui::IProjectContext: recipes (recipe editor) and sensitivity (heatmap panel).
  QList<ui::AlgorithmSpecRow> algorithmSpecs() const override;
  QList<ui::RecipePreset> recipePresets() const override;
  ui::RecipeCheck checkRecipe(const QString& yaml) const override;
  QString recipeFormToYaml(const ui::RecipeForm& form, QString* error = nullptr) const override;
  bool addRecipeToProject(const QString& name, const QString& yaml) override;
  bool saveRecipeFile(const QString& path, const QString& yaml) override;
  ui::ResourceEstimateRow estimateProjectRecipe(const QString& name) const override;
  const ui::SensitivityGrid& sensitivity() const override { return sensitivity_; }
  bool sensitivityScanAvailable() const override;
  bool sensitivityScanRunning() const override { return bridge_.isRunning(scan_job_); }
  int startSensitivityScan() override;
  bool latencyMeasureAvailable() const override;
  bool latencyMeasureRunning() const override { return bridge_.isRunning(latency_job_); }
  int startLatencyMeasure() override;
  // What-if assignment (project_context_assignment.cpp).
  const QList<int>& assignment() const override { return assignment_; }
  void setAssignment(const QList<int>& columns) override;
  const ui::AssignmentPrediction& assignmentPrediction() const override { return prediction_; }
  bool assignFromRecipe(const QString& recipe) override;
  int runAssignment(const QString& name) override;

  // Available memory the estimates warn against: /proc/meminfo's MemAvailable, or what a
  // test set here (nullopt: read the machine again).
  quint64 freeMemoryBytes() const;
  void setFreeMemoryOverride(std::optional<quint64> bytes) { free_override_ = bytes; }
  // Where recipe presets are looked for (default: <source>/assets/recipes and
  // <executable>/../share/mcw/recipes).
  void setPresetDirectories(const QStringList& dirs) { preset_dirs_ = dirs; }
  // Records one result of the open model in the grid (a new layer or setting re-lays it
  // out) and tells the viewers; the scan job's cells arrive the same way.
  void addSensitivityResult(const SensitivityEntry& entry);
  int sensitivityScanJob() const { return scan_job_; }  // the newest scan's job id, or 0
  ScanSummary lastSensitivityScan() const { return last_scan_; }
  // "estimated 12 s / 40 MiB, took 15 s" for a run that recorded estimate_seconds (empty
  // when the run or its estimate is unknown). Opens the project's run store to read it.
  QString runEstimateReport(qint64 run_id) const;

  // Runs (project_context_runs.cpp).
  QList<ui::RunRow> runs() const override { return run_history_.runs(); }
  QList<ui::LayerMetricRow> runLayerMetrics(qint64 run_id) override;
  QList<ui::CurvePointRow> runCurve(qint64 run_id) override;
  QList<qint64> paretoFront(const QString& x_metric, const QString& y_metric,
                            bool maximize_y) const override;
  int startRun(const QString& recipe) override;
  int startRunAll() override;
  // The tensor inspector (project_context_inspector.cpp).
  void requestTensorHeatmap(const QString& tensor, int grid_h, int grid_w) override;
  void requestPackedParameters(int index) override;
  const ui::TensorHeatmapData& tensorHeatmap() const override { return heatmap_; }
  int tensorHeatmapJob() const { return heatmap_job_; }
  RunHistory& runHistory() { return run_history_; }

  // Model diff (project_context_diff.cpp).
  int startModelDiff(const QString& other_path) override;
  void cancelModelDiff() override;
  const ui::ModelDiffResult& modelDiff() const override { return diff_; }

  // Project-file actions (MainWindow's File menu).
  void newProject(const QString& name = QStringLiteral("untitled"));
  bool saveProject();  // false when the project has no file yet, or on error (logged)
  bool saveProjectAs(const QString& path);
  void closeProject();
  QString projectFile() const { return project_file_; }
  bool isDirty() const { return dirty_; }

  // Where demo projects are looked for (default: <source>/projects and
  // <executable>/../share/mcw/projects).
  void setDemoDirectories(const QStringList& dirs) { demo_dirs_ = dirs; }

  // Exports (project_context_export.cpp), each a job; the job id, or 0 when it could not
  // start (the reason logged). A report of the saved project in the format of `path`'s
  // extension: .html, .md, .csv (the engine's writers) or .pdf (rendered here).
  int startExportReport(const QString& path);
  // The model of a done run, compressed again with its recipe: a GGUF file of llama.cpp's
  // file type `gguf_type` when `path` ends in .gguf (F32: exactly the weights the run
  // evaluated; the run's codes kept where they are the type's blocks: gguf_export.h), else
  // a Hugging Face directory with the source's tokenizer files, or with compressed_tensors
  // a compressed-tensors checkpoint for vLLM (the run's affine layers as pack-quantized
  // parts, engine/export/compressed_tensors_export.h); recorded as an artifact of the run.
  // `gguf_calibration`: how GGUF blocks the run's codes do not fill are re-quantised with
  // the project's calibration text: "gptq" (GPTQ on the block grid), "imatrix" (as
  // llama-quantize --imatrix) or "none" (the plain encoders).
  int startExportModel(qint64 run_id, const QString& path, bool compressed_tensors = false,
                       const QString& gguf_type = QStringLiteral("F32"),
                       const QString& gguf_calibration = QStringLiteral("gptq"));

  // UI responsiveness while jobs run: the figures of a job that ended (0: the one that
  // ended last); ticks 0 for a job that has not ended.
  HeartbeatStats heartbeatStats(int job_id = 0) const;
  HeartbeatMonitor& heartbeat() { return heartbeat_; }
  void log(const QString& line);
  EngineBridge& bridge() { return bridge_; }

  // The project's run store cannot be read because it is damaged (not because it is busy
  // or from a newer MCW): damagedRunStore is emitted once per project, and
  // startFreshRunStore moves the damaged file aside (kept, never deleted) so that runs
  // start in a new store at the same place. False, with the reason logged, on failure.
  bool startFreshRunStore();
 signals:
  void damagedRunStore(const QString& path, const QString& message);

 private:
  void onRunStoreFailed(const QString& message);
  void loadModel(const QString& path);
  void startStatistics();
  void refreshProject();
  void addRecent(const QString& path);
  void onJobUpdated(const ui::JobProgress& job);
  RecipeCheckContext checkContext() const;
  void loadSensitivity();
  void updateRunSource();
  void clearModelDiff();
  int startRecipeJob(const QString& job_name, const QStringList& recipes);
  void addScanCell(const SensitivityCell& cell);
  void addOnnxScanCell(const OnnxSensitivityCell& cell);
  int startOnnxSensitivityScan();
  // The grid's row order: the llama model's tensors, or the ONNX graph's layers.
  std::vector<std::string> layerOrder() const;
  // A scan about to run: every cell of `layers` × the default settings laid out, pending.
  void layOutScanGrid(const std::vector<std::string>& layers);
  // The grid was replaced: viewers hear onSensitivityLoaded, and the assignment is kept
  // where the grid's rows and columns are the same, else reset.
  void sensitivityReplaced();
  // Whether `what` (a job reading the saved project, as runs do) can start: the project is
  // saved and names the model on screen; else logs why, naming `what`.
  bool savedProjectShowsModel(const QString& what);
  // Whether a job over the open model's linears (`job`: its last id) can start now, else
  // logs why: "<what> needs an open project with a llama-family model", "<running> is
  // already running", or the saved-project check for `doing`.
  bool canStartLinearJob(int job, const QString& what, const QString& running, const QString& doing);
  // Announces job `id` to the viewers again (its first update preceded its id).
  void announceJob(int id);
  // A result went into the grid at (row, col): one cell changed, or the grid was re-laid out.
  void cellPut(int row, int col, bool reshaped);
  void updateAssignmentPrediction();
  PredictionCalibration predictionCalibration() const;
  template <class F> void notify(F f) {
    for (ui::IProjectViewer* v : std::vector<ui::IProjectViewer*>(viewers_)) f(v);
  }

  EngineBridge bridge_;
  std::vector<ui::IProjectViewer*> viewers_;
  std::optional<Project> project_;
  QString project_file_;
  bool dirty_ = false;
  QString damaged_store_offered_;  // the store damagedRunStore was emitted for
  ui::ProjectSummary summary_;
  ui::ModelSummary model_;
  std::shared_ptr<const ModelFile> model_file_;
  int model_generation_ = 0, model_job_ = 0, stats_job_ = 0;
  ui::Selection selection_;
  std::map<int, ui::JobProgress> jobs_;
  QStringList log_;
  QStringList demo_dirs_;
  // Recipe editor and sensitivity.
  std::optional<ModelShape> shape_;  // the open model's linears (llama-family models only)
  std::vector<std::string> onnx_layers_;  // an ONNX graph's Conv/MatMul/Gemm layers, in order
  int64_t model_context_ = 0;        // its max_seq_len
  std::optional<quint64> free_override_;
  QStringList preset_dirs_;
  ui::SensitivityGrid sensitivity_;
  std::string model_fingerprint_;  // of the open model, once the cache or a scan read it
  QList<int> assignment_;
  QStringList assignment_axes_;  // the grid's layers and settings the assignment is over
  ui::AssignmentPrediction prediction_;
  std::pair<QString, double> assignment_budget_{{}, std::nan("")};  // from a search's recipe
  int sensitivity_job_ = 0, scan_job_ = 0, latency_job_ = 0;
  ScanSummary last_scan_;
  HeartbeatMonitor heartbeat_;
  std::map<int, HeartbeatStats> heartbeat_stats_;  // by job id
  int last_finished_job_ = 0;
  ui::TensorHeatmapData heatmap_;
  int heatmap_job_ = 0, heatmap_generation_ = 0;
  QSet<int> packed_parameters_pending_;  // model_.packed indices being read
  ui::ModelDiffResult diff_;
  int diff_generation_ = 0;
  RunHistory run_history_;  // after bridge_: destroyed first, while jobs still can post
};

}  // namespace mcw::studio
