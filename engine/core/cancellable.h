// Cancel that reaches inside parallel work. A CancelToken is polled between steps, but one
// step of a real-size model (a 2048-token window through an 8 B model's layer) runs for
// seconds inside parallel algorithms that cannot poll. run_cancellable runs `body` in its
// own oneTBB task_group_context and cancels that context when the token fires: every
// parallel algorithm inside stops handing out work, the body runs on to its next poll
// quickly (on partial results, which it throws away) and Cancelled is thrown. Only for
// bodies whose parallel algorithms compute numbers (forward passes): one that must see
// every iteration of a loop to stay consistent (a writer, a pipeline) must not run in it.
#pragma once
#include <functional>

#include "engine/core/progress.h"

namespace mcw {

// Runs body; with a token, throws Cancelled when the token fired before body returned.
void run_cancellable(const CancelToken* cancel, const std::function<void()>& body);

}  // namespace mcw
