#include "app/studio/heartbeat.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mcw::studio {

QString HeartbeatStats::describe() const {
  return QStringLiteral("worst %1 ms late, p99 %2 ms (%3 beats of %4 ms) during %5")
      .arg(worst_ms, 0, 'f', 1)
      .arg(p99_ms, 0, 'f', 1)
      .arg(ticks)
      .arg(interval_ms, 0, 'f', 0)
      .arg(job);
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(p / 100.0 * double(values.size()));
  const size_t i = size_t(std::clamp(rank, 1.0, double(values.size()))) - 1;
  return values[i];
}

HeartbeatMonitor::HeartbeatMonitor(int interval_ms, QObject* parent)
    : QObject(parent), interval_ms_(interval_ms) {
  timer_.setTimerType(Qt::PreciseTimer);
  timer_.setInterval(interval_ms_);
  connect(&timer_, &QTimer::timeout, this, &HeartbeatMonitor::beat);
  clock_.start();
}

void HeartbeatMonitor::jobStarted(int id) {
  if (started_.count(id)) return;
  started_[id] = totalTicks();
  if (!timer_.isActive()) {
    last_ns_ = clock_.nsecsElapsed();
    timer_.start();
  }
}

void HeartbeatMonitor::beat() {
  const qint64 now = clock_.nsecsElapsed();
  // Early beats (a coarse timer may fire a little early) count as on time.
  lateness_.push_back(std::max(0.0, double(now - last_ns_) / 1e6 - interval_ms_));
  last_ns_ = now;
}

HeartbeatStats HeartbeatMonitor::jobFinished(int id, const QString& name) {
  HeartbeatStats s;
  s.job = name;
  s.interval_ms = interval_ms_;
  const auto it = started_.find(id);
  if (it == started_.end()) return s;
  const qint64 from = std::max(it->second, first_);
  started_.erase(it);
  std::vector<double> v(lateness_.begin() + (from - first_), lateness_.end());
  s.ticks = int(v.size());
  if (!v.empty()) {
    s.worst_ms = *std::max_element(v.begin(), v.end());
    s.mean_ms = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
    s.p99_ms = percentile(std::move(v), 99);
  }
  prune();
  return s;
}

// Drops the beats no running job needs; stops beating when no job runs.
void HeartbeatMonitor::prune() {
  qint64 keep = totalTicks();
  for (const auto& [id, from] : started_) keep = std::min(keep, from);
  while (first_ < keep && !lateness_.empty()) {
    lateness_.pop_front();
    ++first_;
  }
  if (started_.empty()) timer_.stop();
}

}  // namespace mcw::studio
