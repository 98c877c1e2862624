// The studio's two hand-offs between threads, built on std::mutex and std::thread: calls
// from workers to the thread a QObject lives in (PostedCalls), and work from the UI thread
// to one background thread (SerialWorker). Qt's own (queued functor calls, QThreadPool)
// would do as well, but their synchronisation happens inside Qt, which Debian does not
// build with ThreadSanitizer: every such hand-off then looks like a race, and real races
// in the studio's own code could not be told from them. These TSan sees.
#pragma once
#include <QObject>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace mcw::studio {

// Calls from any thread, run in order on the thread `parent` lives in. Dropped with it:
// calls still queued when it is destroyed never run.
class PostedCalls : public QObject {
  Q_OBJECT
 public:
  explicit PostedCalls(QObject* parent) : QObject(parent) {}
  void post(std::function<void()> fn);  // any thread

 private:
  // Woken by a queued call that carries nothing (by name: no functor object crosses).
  Q_INVOKABLE void runPosted();
  std::mutex mutex_;
  std::deque<std::function<void()>> calls_;
  bool scheduled_ = false;
};

// One background thread running tasks in the order given. The destructor runs what is
// queued and then joins.
class SerialWorker {
 public:
  SerialWorker();
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;
  void start(std::function<void()> task);

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace mcw::studio
