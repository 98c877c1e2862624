// What a panel may ask of and hear from the studio (the RenderDoc ICaptureContext
// pattern): one context owns the open project, the model, the jobs and the selection;
// panels register as viewers, read data from it and ask it to act. A panel never calls
// another panel and never calls the engine; app/ProjectContext implements this.
#pragma once
#include <QString>
#include <QStringList>

#include "widgets/bridge_types.h"
#include "widgets/editor_types.h"
#include "widgets/inspector_types.h"
#include "widgets/model_diff_types.h"

namespace mcw::ui {

// Every callback runs on the UI thread. Defaults do nothing so a panel overrides only
// what it shows.
class IProjectViewer {
 public:
  virtual ~IProjectViewer() = default;
  virtual void onProjectLoaded() {}  // also on close, on save (file/dirty change) and New
  virtual void onModelLoaded() {}    // model opened, failed, or closed
  virtual void onTensorStatsUpdated(int /*row*/) {}
  virtual void onSelectionChanged() {}
  virtual void onRunUpdated(qint64 /*run_id*/) {}
  virtual void onJobUpdated(const JobProgress& /*job*/) {}
  virtual void onLogMessage(const QString& /*line*/) {}
  // The sensitivity grid was replaced (model loaded, cache read), or one cell arrived.
  virtual void onSensitivityLoaded() {}
  virtual void onSensitivityCell(int /*row*/, int /*col*/) {}
  // The what-if assignment or its prediction changed (an edit, a new grid, a finished run).
  virtual void onAssignmentChanged() {}
  // tensorHeatmap() changed: a request started, finished or failed.
  virtual void onTensorHeatmapUpdated() {}
  // The model diff started, progressed, finished, failed, was cancelled or cleared.
  virtual void onModelDiffUpdated() {}
  // model().packed[index] got its per-group parameters (requestPackedParameters).
  virtual void onPackedParametersLoaded(int /*index*/) {}
};

class IProjectContext {
 public:
  virtual ~IProjectContext() = default;

  virtual void addViewer(IProjectViewer* viewer) = 0;
  virtual void removeViewer(IProjectViewer* viewer) = 0;

  virtual bool hasProject() const = 0;
  virtual const ProjectSummary& project() const = 0;
  virtual const ModelSummary& model() const = 0;
  virtual const Selection& selection() const = 0;
  virtual QList<JobProgress> jobs() const = 0;
  virtual QStringList logLines() const = 0;
  virtual QStringList recentProjects() const = 0;
  virtual QStringList demoProjects() const = 0;

  // Requests; results arrive through the viewer callbacks. Errors are logged and shown,
  // never thrown. open* return false when the file could not be read at all.
  virtual bool openProject(const QString& path) = 0;
  virtual void openModel(const QString& path) = 0;
  virtual void setSelection(const Selection& selection) = 0;
  virtual int startEvaluate() = 0;  // the job id, or 0 when it could not start
  virtual void cancelJob(int id) = 0;

  // Recipes (the recipe editor). Nothing here throws: problems come back as data.
  virtual QList<AlgorithmSpecRow> algorithmSpecs() const = 0;
  // The project's recipes first, then the presets shipped with MCW.
  virtual QList<RecipePreset> recipePresets() const = 0;
  // Parses the YAML, checks its targets against the open model, estimates its resources.
  virtual RecipeCheck checkRecipe(const QString& yaml) const = 0;
  // The YAML of a form (empty, and the reason in `error`, when it cannot be written).
  virtual QString recipeFormToYaml(const RecipeForm& form, QString* error = nullptr) const = 0;
  // Adds (or replaces, by name) an inline recipe; the project becomes dirty.
  virtual bool addRecipeToProject(const QString& name, const QString& yaml) = 0;
  virtual bool saveRecipeFile(const QString& path, const QString& yaml) = 0;
  // The estimate of running one of the project's recipes (the run action shows it).
  virtual ResourceEstimateRow estimateProjectRecipe(const QString& name) const = 0;

  // Sensitivity results of the open model (read from the run store's cache).
  virtual const SensitivityGrid& sensitivity() const = 0;
  // True when a scan can start now (a project with a model it can scan, no scan running).
  virtual bool sensitivityScanAvailable() const = 0;
  virtual bool sensitivityScanRunning() const = 0;  // cancelled through cancelJob()
  virtual int startSensitivityScan() = 0;  // the job id, or 0 when it could not start
  // Times every linear at every setting of the grid on this machine (one layer per weight
  // shape, on the packed kernel it would deploy with) and keeps the table in the project's
  // store for this CPU, so that the grid and the what-if prediction get decode latency.
  virtual bool latencyMeasureAvailable() const = 0;  // as sensitivityScanAvailable
  virtual bool latencyMeasureRunning() const = 0;
  virtual int startLatencyMeasure() = 0;  // the job id, or 0 when it could not start

  // What-if assignment over the sensitivity grid: per grid row the column of the setting
  // chosen for that layer, or -1 to keep it as it is. It starts all -1 and is reset when
  // the grid's rows or columns change; every change is predicted at once (on the UI
  // thread: a sum over the cells) and announced by onAssignmentChanged.
  virtual const QList<int>& assignment() const = 0;
  virtual void setAssignment(const QList<int>& columns) = 0;  // ignored unless one per row
  virtual const AssignmentPrediction& assignmentPrediction() const = 0;
  // Sets the assignment a project recipe amounts to (a search's answer, a mixed-precision
  // recipe); false, with the reason logged, when the grid cannot express it.
  virtual bool assignFromRecipe(const QString& recipe) = 0;
  // Writes the assignment as a per-layer recipe carrying its prediction, adds it to the
  // project under `name` (replacing one of that name) and runs it; the job id, or 0 (the
  // reason logged).
  virtual int runAssignment(const QString& name) = 0;

  // Runs of the open project, from its run store, newest first. They are re-read in the
  // background after every change; onRunUpdated(id) says a run changed (-1: several, or
  // the whole list was reloaded).
  virtual QList<RunRow> runs() const = 0;
  virtual QList<LayerMetricRow> runLayerMetrics(qint64 run_id) = 0;  // one query, in model order
  virtual QList<CurvePointRow> runCurve(qint64 run_id) = 0;  // empty: the run has none
  // Ids of the done runs on the Pareto front of two metrics, x minimised and y minimised
  // (or maximised when `maximize_y`, as for top-1 agreement).
  virtual QList<qint64> paretoFront(const QString& x_metric, const QString& y_metric,
                                    bool maximize_y) const = 0;
  // A job that runs the recipe (after the uncompressed baseline when the store has none)
  // and records it; the job id, or 0 when it could not start.
  virtual int startRun(const QString& recipe) = 0;
  virtual int startRunAll() = 0;

  // The tensor inspector's data: a job computes the tile heatmap and histogram of one
  // tensor of the open model (replacing any earlier request); onTensorHeatmapUpdated says
  // when tensorHeatmap() changed.
  virtual void requestTensorHeatmap(const QString& tensor, int grid_h, int grid_w) = 0;
  virtual const TensorHeatmapData& tensorHeatmap() const = 0;
  // Model diff: the open model (A) against another model file (B), tensor by tensor, in a
  // job; the job id, or 0 when it could not start (no model open yet; the reason logged).
  // A new diff replaces the last one; opening another model clears it.
  virtual int startModelDiff(const QString& other_path) = 0;
  virtual void cancelModelDiff() = 0;
  virtual const ModelDiffResult& modelDiff() const = 0;
  // Reads model().packed[index]'s per-group parameters from the file in a job when they
  // were left there (parameters_loaded false); onPackedParametersLoaded says when.
  virtual void requestPackedParameters(int /*index*/) {}
};

}  // namespace mcw::ui
