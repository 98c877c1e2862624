// Cancellation and progress reporting shared by every long operation (load, compress,
// evaluate, scan). Both are cheap to copy and safe to use from any thread.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/error.h"

namespace mcw {

class CancelToken {
 public:
  CancelToken() : state_(std::make_shared<State>()) {}
  // Sets the flag, then calls every subscribed callback (on this thread).
  void cancel() const {
    state_->flag.store(true, std::memory_order_relaxed);
    const std::lock_guard<std::mutex> lock(state_->mutex);
    for (const auto& [id, fn] : state_->callbacks) fn();
  }
  bool cancelled() const { return state_->flag.load(std::memory_order_relaxed); }
  void throw_if_cancelled() const {
    if (cancelled()) throw Cancelled();
  }

  // `fn` runs when the token is cancelled (at once when it already is) until the returned
  // object is destroyed: how work that cannot poll (a running parallel algorithm) is told.
  class Subscription {
   public:
    Subscription(std::shared_ptr<void> remove) : remove_(std::move(remove)) {}

   private:
    std::shared_ptr<void> remove_;
  };
  [[nodiscard]] Subscription subscribe(std::function<void()> fn) const {
    std::shared_ptr<State> s = state_;
    uint64_t id;
    {
      const std::lock_guard<std::mutex> lock(s->mutex);
      id = s->next_id++;
      s->callbacks.emplace_back(id, fn);
    }
    if (cancelled()) fn();
    return Subscription(std::shared_ptr<void>(nullptr, [s, id](void*) {
      const std::lock_guard<std::mutex> lock(s->mutex);
      std::erase_if(s->callbacks, [&](const auto& c) { return c.first == id; });
    }));
  }

 private:
  struct State {
    std::atomic<bool> flag{false};
    std::mutex mutex;
    uint64_t next_id = 0;
    std::vector<std::pair<uint64_t, std::function<void()>>> callbacks;
  };
  std::shared_ptr<State> state_;
};

struct ProgressEvent {
  std::string stage;    // "calibrate", "gptq", "eval", ...
  std::string item;     // the layer or tensor being worked on, may be empty
  double fraction = 0;  // of the whole operation, 0..1
  std::string message;  // free text for logs
};

// May be empty; callers use report() so that a missing callback costs nothing.
using ProgressFn = std::function<void(const ProgressEvent&)>;

inline void report(const ProgressFn& fn, std::string stage, std::string item, double fraction,
                   std::string message = {}) {
  if (fn) fn(ProgressEvent{std::move(stage), std::move(item), fraction, std::move(message)});
}

// `fn` for one part of a longer operation: fractions 0..1 mapped to lo..hi.
inline ProgressFn progress_part(const ProgressFn& fn, double lo, double hi) {
  if (!fn) return {};
  return [fn, lo, hi](const ProgressEvent& e) {
    ProgressEvent part = e;
    part.fraction = lo + (hi - lo) * e.fraction;
    fn(part);
  };
}

}  // namespace mcw
