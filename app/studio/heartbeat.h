// How responsive the UI thread stays while engine jobs run: a QTimer beats on the UI
// thread every few milliseconds, and each beat's lateness (the time since the previous
// beat minus the nominal interval) is kept while at least one job runs. When a job ends,
// the beats since it started give its figures: a UI thread that never blocks stays within
// a few milliseconds; a blocking call shows up as one beat as late as the call was long.
#pragma once
#include <QElapsedTimer>
#include <QObject>
#include <QString>
#include <QTimer>
#include <deque>
#include <map>
#include <vector>

namespace mcw::studio {

struct HeartbeatStats {
  QString job;             // the job the figures were taken during
  int ticks = 0;           // beats counted while it ran
  double interval_ms = 0;  // the nominal interval
  double worst_ms = 0;     // the latest beat's lateness
  double p99_ms = 0;       // 99th percentile of the lateness (nearest rank)
  double mean_ms = 0;
  // "worst 7.1 ms late, p99 2.0 ms (812 beats of 10 ms) during Sensitivity scan"
  QString describe() const;
  // Jobs of a few beats (opening a small model, while the window itself is still being
  // laid out) say nothing about responsiveness: only longer ones are reported.
  bool meaningful() const { return ticks >= 20; }
};

// Nearest-rank percentile (0 < p <= 100) of `values`; 0 for none. Sorts a copy.
double percentile(std::vector<double> values, double p);

class HeartbeatMonitor : public QObject {
  Q_OBJECT
 public:
  explicit HeartbeatMonitor(int interval_ms = 10, QObject* parent = nullptr);

  // Both on the UI thread. The timer runs only while some job is running.
  void jobStarted(int id);
  // The figures of the beats since `id` started; a job never started gives ticks 0.
  HeartbeatStats jobFinished(int id, const QString& name);

  bool isBeating() const { return timer_.isActive(); }
  int intervalMs() const { return interval_ms_; }
  qint64 totalTicks() const { return first_ + qint64(lateness_.size()); }

 private:
  void beat();
  void prune();

  int interval_ms_;
  QTimer timer_;
  QElapsedTimer clock_;
  qint64 last_ns_ = 0;
  // Lateness of the beats kept, in ms; the first one is beat number first_.
  std::deque<double> lateness_;
  qint64 first_ = 0;
  std::map<int, qint64> started_;  // running job -> the number of its first beat
};

}  // namespace mcw::studio
