#include "app/studio/engine_bridge.h"

#include <QPointer>
#include <exception>

#include "app/studio/thread_handoff.h"
#include "engine/core/error.h"
#include "engine/core/memory_usage.h"

namespace mcw::studio {

using ui::JobProgress;
using ui::JobState;
using Clock = std::chrono::steady_clock;

JobContext::JobContext(EngineBridge* bridge, int id, QString name, CancelToken cancel)
    : bridge_(bridge), id_(id), name_(std::move(name)), cancel_(std::move(cancel)),
      start_(Clock::now()) {}

void JobContext::post(std::function<void()> fn) const {
  // Dropped if the bridge is destroyed first.
  bridge_->posted_->post(std::move(fn));
}

void JobContext::log(const QString& line) const {
  EngineBridge* b = bridge_;
  post([b, line] { emit b->logMessage(line); });
}

void JobContext::progress(double fraction, const QString& stage, const QString& message) {
  const auto now = Clock::now();
  if (fraction < 1 && now - last_post_ < std::chrono::milliseconds(100)) return;
  last_post_ = now;
  JobProgress p;
  p.id = id_;
  p.name = name_;
  p.stage = stage;
  p.fraction = fraction;
  p.message = message;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  if (fraction > 0.01) p.eta_seconds = elapsed * (1 - fraction) / fraction;
  EngineBridge* b = bridge_;
  post([b, p] {
    if (b->isRunning(p.id)) emit b->jobUpdated(p);
  });
}

EngineBridge::EngineBridge(QObject* parent) : QObject(parent), posted_(new PostedCalls(this)) {}

EngineBridge::~EngineBridge() {
  cancelAll();
  for (auto& [id, r] : running_)
    if (r.thread.joinable()) r.thread.join();
}

int EngineBridge::start(const QString& name, Work work) {
  const int id = next_id_++;
  Running& r = running_[id];
  JobProgress first;
  first.id = id;
  first.name = name;
  first.stage = QStringLiteral("queued");
  emit jobUpdated(first);
  r.thread = std::thread([this, id, name, cancel = r.cancel, work = std::move(work)] {
    JobContext ctx(this, id, name, cancel);
    // The process's anonymous memory while the job runs (other jobs and the window
    // included): what the job needed at most, as `mcw` prints for its commands.
    PeakMemorySampler memory;
    JobProgress last;
    last.id = id;
    last.name = name;
    last.fraction = 1;
    try {
      cancel.throw_if_cancelled();
      work(ctx);
      last.state = JobState::Succeeded;
      const double s = std::chrono::duration<double>(Clock::now() - ctx.start_).count();
      last.message = QStringLiteral("finished in %1 s, peak memory %2 anonymous")
                         .arg(s, 0, 'f', 2)
                         .arg(QString::fromStdString(human_bytes(memory.peak_anonymous())));
    } catch (const Cancelled&) {
      last.state = JobState::Cancelled;
      last.message = QStringLiteral("cancelled");
    } catch (const std::exception& e) {
      last.state = JobState::Failed;
      last.message = QString::fromStdString(e.what());
    }
    ctx.post([this, id, last] { finish(id, last); });
  });
  return id;
}

void EngineBridge::finish(int id, const JobProgress& last) {
  auto it = running_.find(id);
  if (it == running_.end()) return;
  if (it->second.thread.joinable()) it->second.thread.join();  // its work is done
  running_.erase(it);
  emit jobUpdated(last);
  const QString line = last.name + QStringLiteral(": ") + last.message;
  emit logMessage(last.state == JobState::Failed ? QStringLiteral("error: ") + line : line);
}

void EngineBridge::cancel(int id) {
  auto it = running_.find(id);
  if (it != running_.end()) it->second.cancel.cancel();
}

void EngineBridge::cancelAll() {
  for (auto& [id, r] : running_) r.cancel.cancel();
}

}  // namespace mcw::studio
