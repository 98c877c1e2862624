#include "app/cli/progress_bar.h"

#include <csignal>
#include <cstdio>

#include "app/cli/format.h"

namespace mcw::cli {

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)), start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { end_line(); }

void ProgressBar::end_line() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

void ProgressBar::update(const ProgressEvent& e) {
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && e.fraction < 1 && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  if (!drawn_) first_ = now, first_fraction_ = e.fraction;
  drawn_ = true;
  // The rate since the first report: a resumed job starts part-way (its first report says
  // so at once), and counting from zero would make it look fast.
  const double since = std::chrono::duration<double>(now - first_).count();
  const double done = e.fraction - first_fraction_;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double eta = done > 0 ? since * (1 - e.fraction) / done
                     : e.fraction > 0 ? elapsed * (1 - e.fraction) / e.fraction : 0;
  constexpr int kWidth = 30;
  const int filled = int(e.fraction * kWidth);
  std::string bar(size_t(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r%s [%s] %5.1f%%  %s  eta %s   ", label_.c_str(), bar.c_str(),
               100 * e.fraction, e.message.c_str(), human_duration(eta).c_str());
  std::fflush(stderr);
}

static CancelToken* g_cancel = nullptr;

extern "C" void mcw_on_sigint(int) {
  if (g_cancel) g_cancel->cancel();  // an atomic store: safe in a signal handler
}

SigintCancel::SigintCancel() {
  g_cancel = &token_;
  struct sigaction sa {};
  sa.sa_handler = mcw_on_sigint;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_);
}

SigintCancel::~SigintCancel() {
  sigaction(SIGINT, &old_, nullptr);
  g_cancel = nullptr;
}

}  // namespace mcw::cli
