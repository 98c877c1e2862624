// Cancellation and progress reporting shared by every long operation (load, compress,
// evaluate, scan). Both are cheap to copy and safe to use from any thread.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "engine/core/error.h"

namespace mcw {

class CancelToken {
 public:
  CancelToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
  void cancel() const { flag_->store(true, std::memory_order_relaxed); }
  bool cancelled() const { return flag_->load(std::memory_order_relaxed); }
  void throw_if_cancelled() const {
    if (cancelled()) throw Cancelled();
  }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
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

}  // namespace mcw
