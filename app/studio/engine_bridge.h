// Runs engine work on worker threads and hands progress and results to the UI thread
// through queued calls, so the UI never waits on the engine. Each job has a CancelToken;
// a job ends as succeeded, failed (mcw::Error or any exception, its one-line message
// kept) or cancelled (mcw::Cancelled). Destroying the bridge cancels and joins every job.
#pragma once
#include <QObject>
#include <chrono>
#include <functional>
#include <map>
#include <thread>

#include "engine/core/progress.h"
#include "widgets/bridge_types.h"

namespace mcw::studio {

// What a job's work function sees, on its worker thread.
class JobContext {
 public:
  const CancelToken& cancel() const { return cancel_; }
  // Throttled to a few updates per second; the ETA comes from the elapsed time.
  void progress(double fraction, const QString& stage, const QString& message = {});
  // Runs `fn` on the UI thread, later, unless the bridge is gone by then.
  void post(std::function<void()> fn) const;
  void log(const QString& line) const;

 private:
  friend class EngineBridge;
  JobContext(class EngineBridge* bridge, int id, QString name, CancelToken cancel);
  class EngineBridge* bridge_;
  int id_;
  QString name_;
  CancelToken cancel_;
  std::chrono::steady_clock::time_point start_, last_post_;
};

class EngineBridge : public QObject {
  Q_OBJECT
 public:
  using Work = std::function<void(JobContext&)>;

  explicit EngineBridge(QObject* parent = nullptr);
  ~EngineBridge() override;

  int start(const QString& name, Work work);  // returns the job id (> 0)
  void cancel(int id);
  void cancelAll();
  bool isRunning(int id) const { return running_.count(id) != 0; }
  int runningCount() const { return int(running_.size()); }

 signals:
  void jobUpdated(const mcw::ui::JobProgress& job);
  void logMessage(const QString& line);

 private:
  friend class JobContext;
  void finish(int id, const mcw::ui::JobProgress& last);

  struct Running {
    std::thread thread;
    CancelToken cancel;
  };
  std::map<int, Running> running_;
  int next_id_ = 1;
  class PostedCalls* posted_;  // a child: what jobs post to the UI thread
};

}  // namespace mcw::studio
