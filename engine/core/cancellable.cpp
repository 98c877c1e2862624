#include "engine/core/cancellable.h"

#include <tbb/task_group.h>

namespace mcw {

void run_cancellable(const CancelToken* cancel, const std::function<void()>& body) {
  if (!cancel) return body();
  cancel->throw_if_cancelled();
  tbb::task_group_context context;
  const auto subscription = cancel->subscribe([&] { context.cancel_group_execution(); });
  tbb::task_group group(context);
  group.run_and_wait(body);  // parallel algorithms inside bind to `context`
  cancel->throw_if_cancelled();
}

}  // namespace mcw
