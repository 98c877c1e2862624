// Runs fn(0..n-1) on oneTBB with at most `max_live` items in flight at once, whatever the
// work stealing inside fn does: each item may hold a model copy, so the bound is on memory,
// not only on threads. `done(i)` runs after item i finished, one call at a time (on a
// worker thread, in completion order). `stop()` is asked before each item starts; once it
// says true no further item starts. An exception in fn ends the loop and is rethrown.
#pragma once
#include <tbb/parallel_pipeline.h>

#include <algorithm>
#include <cstdint>
#include <functional>

namespace mcw {

template <class Fn, class Done, class Stop>
void bounded_parallel_for(int64_t n, int64_t max_live, Fn&& fn, Done&& done, Stop&& stop) {
  if (n <= 0) return;
  int64_t next = 0;
  tbb::parallel_pipeline(size_t(std::max<int64_t>(1, max_live)),
                         tbb::make_filter<void, int64_t>(tbb::filter_mode::serial_in_order,
                                                         [&](tbb::flow_control& fc) -> int64_t {
                                                           if (next >= n || stop()) {
                                                             fc.stop();
                                                             return 0;
                                                           }
                                                           return next++;
                                                         }) &
                             tbb::make_filter<int64_t, int64_t>(tbb::filter_mode::parallel,
                                                                [&](int64_t i) {
                                                                  fn(i);
                                                                  return i;
                                                                }) &
                             tbb::make_filter<int64_t, void>(tbb::filter_mode::serial_out_of_order,
                                                             [&](int64_t i) { done(i); }));
}

}  // namespace mcw
