// The open project's runs as the panels see them (ui::RunRow), read from its run store on
// a worker thread so the UI never waits on SQLite. Reloads are coalesced: asking while one
// is in flight queues exactly one more. The store is opened only once its file exists (a
// project that never ran gets no database just by being opened); run jobs write through
// their own connection and WAL lets this one read meanwhile.
#pragma once
#include <QList>
#include <QObject>
#include <memory>
#include <vector>

#include "app/studio/thread_handoff.h"
#include "engine/runs/run_store.h"
#include "widgets/bridge_types.h"

namespace mcw::studio {

class RunHistory : public QObject {
  Q_OBJECT
 public:
  explicit RunHistory(QObject* parent = nullptr);
  ~RunHistory() override;

  // The store file and the project whose runs to show; an empty path shows none. A change
  // clears the list and reloads; the same source again only reloads.
  void setSource(const QString& database_path, const QString& project);
  void reload();
  bool isLoading() const { return loading_; }

  const QList<ui::RunRow>& runs() const { return rows_; }
  const std::vector<RunRecord>& doneRuns() const { return done_; }  // with their metrics
  // Per-layer metrics of one run: a single query on the UI thread (it may wait for a
  // reload in flight, never for a run job, which writes through its own connection).
  QList<ui::LayerMetricRow> layerMetrics(qint64 run_id);
  QList<ui::CurvePointRow> curve(qint64 run_id);  // likewise
  QList<qint64> paretoFront(const QString& x_metric, const QString& y_metric,
                            bool maximize_y) const;

 signals:
  void updated(qint64 run_id);  // -1: several runs, or the whole list
  void failed(const QString& message);

 private:
  struct Source;
  // Calls fn with the stored record of one run (not when there is none); a store error is
  // reported through failed().
  template <class Fn>
  void readRun(qint64 run_id, Fn&& fn);
  void startLoad();
  void finishLoad(int generation, std::vector<RunRecord> records, const QString& error);

  std::shared_ptr<Source> source_;
  QString path_, project_;
  std::vector<RunRecord> done_;  // done runs with their metrics, for Pareto fronts
  QList<ui::RunRow> rows_;
  QString last_error_;
  int generation_ = 0;
  bool loading_ = false, pending_ = false;
  class PostedCalls* posted_;  // a child: loads hand their records back through it
  SerialWorker worker_;        // one thread: loads never overlap; last, so joined first
};

// The engine's RunRecord as the panels' plain row (pareto left false).
ui::RunRow to_run_row(const RunRecord& r);

}  // namespace mcw::studio
