// Terminal progress for long commands: a bar with ETA on stderr, redrawn at most ten
// times a second, and Ctrl-C turned into a CancelToken so work stops cleanly.
#pragma once
#include <signal.h>
#include <chrono>
#include <string>

#include "engine/core/progress.h"

namespace mcw::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();  // ends the line
  void update(const ProgressEvent& e);
  void end_line();  // before another line is printed; the next update draws a new bar
  ProgressFn callback() { return [this](const ProgressEvent& e) { update(e); }; }

 private:
  std::string label_;
  std::chrono::steady_clock::time_point start_, last_, first_;
  double first_fraction_ = 0;
  bool drawn_ = false;
};

// While alive, Ctrl-C cancels `token` instead of killing the process; a second Ctrl-C
// kills as usual (SA_RESETHAND). The previous handler comes back on destruction.
class SigintCancel {
 public:
  SigintCancel();
  ~SigintCancel();
  SigintCancel(const SigintCancel&) = delete;
  SigintCancel& operator=(const SigintCancel&) = delete;
  const CancelToken& token() const { return token_; }

 private:
  CancelToken token_;
  struct sigaction old_ {};
};

}  // namespace mcw::cli
