// Plain data the panels show. The panels know the engine only through these structs,
// which app/ fills from engine types; nothing here runs a kernel or includes the engine.
#pragma once
#include <QDateTime>
#include <QList>
#include <QMap>
#include <QMetaType>
#include <QString>
#include <QStringList>
#include <QtGlobal>

#include "widgets/packed_layer_types.h"

namespace mcw::ui {

struct TensorStatsRow {
  bool ready = false;  // false until the background statistics job reaches this tensor
  double min = 0, max = 0, mean = 0, std = 0;
  quint64 zeros = 0, nonfinite = 0;
};

struct TensorRow {
  QString name;
  QList<qint64> shape;  // outermost first
  QString dtype;
  quint64 params = 0, bytes = 0;
  quint64 macs_per_token = 0;  // rows x cols for a 2-D weight applied once per token; else 0
  TensorStatsRow stats;
  int packed = -1;  // index into ModelSummary::packed when the layer is compressed there
};

struct ModelSummary {
  QString path;  // empty when no model is open
  QString format, architecture;
  QString error;  // one line when the model could not be opened
  bool loading = false;
  quint64 params = 0, bytes = 0;
  QList<TensorRow> tensors;
  // The packed export beside the model (packed.safetensors), when there is one.
  QString packed_path, packed_error;
  QList<PackedLayerRow> packed;
};

struct RecipeRow {
  QString name;
  QString source;  // the file's path, or "(inline)"
};

struct ProjectSummary {
  QString file;  // empty for a project that was never saved
  QString name;
  QString model_path, calibration_path, evaluation_path, database_path;
  QList<RecipeRow> recipes;
  qint64 window = 0, stride = 0, max_tokens = 0;
  QStringList problems;  // one line each: "model: /path: no such file or directory"
  bool dirty = false;
};

enum class JobState { Running, Succeeded, Failed, Cancelled };

struct JobProgress {
  int id = 0;
  QString name;  // "Evaluate", "Tensor statistics", ...
  QString stage;
  double fraction = 0;  // 0..1
  QString message;
  double eta_seconds = -1;  // -1 while unknown
  JobState state = JobState::Running;
};

struct Selection {
  QString layer;  // a tensor name, or empty
  qint64 run_id = -1;
  QString recipe;
};

// One stored run of the open project (newest first in IProjectContext::runs()). Metric
// names are the store's: perplexity, kl, top1, bits_per_weight, size_bytes,
// latency_ms_per_token, ...; a run that did not finish has none.
struct RunRow {
  qint64 id = 0;
  QString recipe;
  QString status;  // "running", "done", "failed", "cancelled", "interrupted", "queued"
  QDateTime started;
  double duration_seconds = -1;  // -1 while running
  QString error;                 // why it failed
  QMap<QString, double> metrics;
  // On the Pareto front of (perplexity, latency_ms_per_token, size_bytes) among done runs.
  bool pareto = false;
  bool isBaseline() const { return recipe == QLatin1String("baseline"); }
  double metric(const QString& name, double fallback = qQNaN()) const {
    return metrics.value(name, fallback);
  }
};

// One value of a run's curve (recovery fine-tuning: "loss", "eval_loss", "eval_kl").
struct CurvePointRow {
  QString series;
  qint64 step = 0;
  double value = 0;
};

struct LayerMetricRow {
  QString layer, name;  // tensor name, metric name ("relative_error", "bits_per_weight")
  double value = 0;
};

QString job_state_name(JobState s);
QString format_bytes(quint64 bytes);     // "1.5 MiB"
QString format_count(quint64 n);         // "1.2 M"
QString format_seconds(double seconds);  // "1:05", "12 s"
QString format_shape(const QList<qint64>& shape);  // "[4096, 11008]"

}  // namespace mcw::ui

Q_DECLARE_METATYPE(mcw::ui::JobProgress)
