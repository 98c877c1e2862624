#include "app/studio/thread_handoff.h"

#include <QMetaObject>

namespace mcw::studio {

void PostedCalls::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    calls_.push_back(std::move(fn));
    if (scheduled_) return;
    scheduled_ = true;
  }
  QMetaObject::invokeMethod(this, "runPosted", Qt::QueuedConnection);
}

void PostedCalls::runPosted() {
  std::deque<std::function<void()>> calls;
  {
    std::lock_guard lock(mutex_);
    calls.swap(calls_);
    scheduled_ = false;
  }
  for (auto& fn : calls) fn();
}

SerialWorker::SerialWorker()
    : thread_([this] {
        for (;;) {
          std::function<void()> task;
          {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
            if (tasks_.empty()) return;  // stopping, and nothing left
            task = std::move(tasks_.front());
            tasks_.pop_front();
          }
          task();
        }
      }) {}

SerialWorker::~SerialWorker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void SerialWorker::start(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

}  // namespace mcw::studio
