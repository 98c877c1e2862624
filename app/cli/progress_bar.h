// Terminal progress for long commands: a bar with ETA on stderr, redrawn at most ten
// times a second, and Ctrl-C turned into a CancelToken so work stops cleanly.
#pragma once
#include <chrono>
#include <string>

#include "engine/core/progress.h"

namespace mcw::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();  // ends the line
  void update(const ProgressEvent& e);
  ProgressFn callback() { return [this](const ProgressEvent& e) { update(e); }; }

 private:
  std::string label_;
  std::chrono::steady_clock::time_point start_, last_;
  bool drawn_ = false;
};

// Installs a SIGINT handler that cancels the returned token (for the process lifetime).
CancelToken cancel_on_sigint();

}  // namespace mcw::cli
