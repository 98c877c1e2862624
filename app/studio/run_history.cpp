#include "app/studio/run_history.h"

#include <QHash>
#include <QMetaObject>
#include <QSet>
#include <filesystem>
#include <mutex>

#include "engine/runs/run_pareto.h"

namespace mcw::studio {

// What a load on the worker needs; shared with it so that a source change never pulls
// the store out from under a load in flight (the old load's result is dropped instead).
struct RunHistory::Source {
  std::mutex mutex;  // one thread at a time on the connection
  std::string path, project;
  std::unique_ptr<RunStore> store;

  RunStore* open() {  // with mutex held
    if (!store && !path.empty() && std::filesystem::exists(path))
      store = RunStore::open_existing(path);
    return store.get();
  }
};

ui::RunRow to_run_row(const RunRecord& r) {
  ui::RunRow row;
  row.id = r.info.id;
  row.recipe = QString::fromStdString(r.info.recipe_name);
  row.status = QString::fromLatin1(run_status_name(r.info.status));
  row.started = QDateTime::fromMSecsSinceEpoch(qint64(r.info.started_at * 1000));
  if (r.info.ended_at > 0)
    row.duration_seconds = std::max(0.0, r.info.ended_at - r.info.started_at);
  row.error = QString::fromStdString(r.info.error);
  for (const Metric& m : r.metrics) row.metrics.insert(QString::fromStdString(m.name), m.value);
  return row;
}

RunHistory::RunHistory(QObject* parent)
    : QObject(parent), source_(std::make_shared<Source>()), posted_(new PostedCalls(this)) {}

RunHistory::~RunHistory() = default;  // worker_ finishes its loads first

void RunHistory::setSource(const QString& database_path, const QString& project) {
  if (database_path == path_ && project == project_) {
    reload();  // e.g. the project reopened: pick up runs recorded meanwhile (by `mcw run`)
    return;
  }
  path_ = database_path;
  project_ = project;
  ++generation_;
  source_ = std::make_shared<Source>();
  source_->path = database_path.toStdString();
  source_->project = project.toStdString();
  done_.clear();
  last_error_.clear();
  const bool had_rows = !rows_.isEmpty();
  rows_.clear();
  loading_ = pending_ = false;
  if (had_rows) emit updated(-1);
  if (!path_.isEmpty()) startLoad();
}

void RunHistory::reload() {
  if (path_.isEmpty()) return;
  if (loading_) {
    pending_ = true;
    return;
  }
  startLoad();
}

void RunHistory::startLoad() {
  loading_ = true;
  pending_ = false;
  const int generation = generation_;
  std::shared_ptr<Source> source = source_;
  worker_.start([this, generation, source] {
    std::vector<RunRecord> records;
    QString error;
    try {
      std::lock_guard lock(source->mutex);
      if (RunStore* store = source->open())
        records = store->load_runs_with_metrics({source->project, std::nullopt});
    } catch (const std::exception& e) {
      error = QString::fromStdString(e.what());
    }
    // Dropped if this object is destroyed first (its destructor waits for this thread, so
    // `this` is alive while the call is posted).
    posted_->post([this, generation, records = std::move(records), error]() mutable {
      finishLoad(generation, std::move(records), error);
    });
  });
}

static bool same_row(const ui::RunRow& a, const ui::RunRow& b) {
  return a.status == b.status && a.metrics == b.metrics && a.duration_seconds == b.duration_seconds;
}

void RunHistory::finishLoad(int generation, std::vector<RunRecord> records, const QString& error) {
  if (generation != generation_) return;
  loading_ = false;
  if (!error.isEmpty() && error != last_error_) emit failed(error);
  last_error_ = error;
  if (error.isEmpty()) {
    QList<ui::RunRow> rows;
    rows.reserve(qsizetype(records.size()));
    for (const RunRecord& r : records) rows.push_back(to_run_row(r));
    done_.clear();
    for (RunRecord& r : records)
      if (r.info.status == RunStatus::Done) done_.push_back(std::move(r));
    QSet<qint64> front;
    for (size_t i : pareto_runs(done_, {"perplexity", "latency_ms_per_token", "size_bytes"}))
      front.insert(done_[i].info.id);
    for (ui::RunRow& row : rows) row.pareto = front.contains(row.id);

    // Which runs changed, so that a viewer can tell one new run from a reload.
    QHash<qint64, const ui::RunRow*> before;
    for (const ui::RunRow& r : rows_) before.insert(r.id, &r);
    QList<qint64> changed;
    for (const ui::RunRow& r : rows) {
      const ui::RunRow* old = before.value(r.id);
      if (!old || !same_row(*old, r) || old->pareto != r.pareto) changed.push_back(r.id);
    }
    QSet<qint64> now;
    for (const ui::RunRow& r : rows) now.insert(r.id);
    bool removed = false;
    for (const ui::RunRow& r : rows_) removed = removed || !now.contains(r.id);
    rows_ = std::move(rows);
    if (removed || changed.size() > 1)
      emit updated(-1);
    else if (changed.size() == 1)
      emit updated(changed.first());
  }
  if (pending_) startLoad();
}

template <class Fn>
void RunHistory::readRun(qint64 run_id, Fn&& fn) {
  std::shared_ptr<Source> source = source_;
  try {
    std::lock_guard lock(source->mutex);
    RunStore* store = source->open();
    if (!store) return;
    if (const std::optional<RunRecord> r = store->get_run(run_id)) fn(*r);
  } catch (const std::exception& e) {
    emit failed(QString::fromStdString(e.what()));
  }
}

QList<ui::LayerMetricRow> RunHistory::layerMetrics(qint64 run_id) {
  QList<ui::LayerMetricRow> out;
  readRun(run_id, [&](const RunRecord& r) {
    for (const LayerMetric& m : r.layers)
      out.push_back({QString::fromStdString(m.layer), QString::fromStdString(m.name), m.value});
  });
  return out;
}

QList<ui::CurvePointRow> RunHistory::curve(qint64 run_id) {
  QList<ui::CurvePointRow> out;
  readRun(run_id, [&](const RunRecord& r) {
    for (const CurvePoint& p : r.curve) out.push_back({QString::fromStdString(p.series), p.step, p.value});
  });
  return out;
}

QList<qint64> RunHistory::paretoFront(const QString& x_metric, const QString& y_metric,
                                      bool maximize_y) const {
  // Only the two objectives, y negated when larger is better: pareto_runs minimises.
  const std::string x = x_metric.toStdString(), y = y_metric.toStdString();
  std::vector<RunRecord> points;
  points.reserve(done_.size());
  for (const RunRecord& r : done_) {
    const std::optional<double> vx = r.metric(x), vy = r.metric(y);
    if (!vx || !vy) continue;
    RunRecord p;
    p.info.id = r.info.id;
    p.metrics = {{"x", *vx}, {"y", maximize_y ? -*vy : *vy}};
    points.push_back(std::move(p));
  }
  QList<qint64> ids;
  for (size_t i : pareto_runs(points, {"x", "y"})) ids.push_back(points[i].info.id);
  return ids;
}

}  // namespace mcw::studio
