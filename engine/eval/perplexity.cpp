#include "engine/eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "engine/core/cancellable.h"
#include "engine/core/error.h"

namespace mcw {

std::vector<EvalWindow> eval_windows(int64_t n, const EvalOptions& opt) {
  if (opt.window < 2) throw Error("", "evaluation window must be at least 2 tokens");
  if (opt.stride < 1 || opt.stride > opt.window)
    throw Error("", "evaluation stride must be between 1 and the window (" +
                        std::to_string(opt.window) + "), got " + std::to_string(opt.stride));
  std::vector<EvalWindow> out;
  int64_t prev_end = 0;
  for (int64_t b = 0; prev_end < n; b += opt.stride) {
    const int64_t end = std::min(b + opt.window, n);
    const int64_t first = std::max(b + 1, prev_end);
    if (first < end) out.push_back({b, end, first});
    prev_end = end;
  }
  return out;
}

void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  out.resize(size_t(n));
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
  double z = 0;
  for (int64_t i = 0; i < n; ++i) z += std::exp(double(x[i]) - mx);
  const double lz = mx + std::log(z);
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - lz;
}

EvalResult evaluate(const LlamaModel& model, std::span<const int32_t> tokens,
                    const EvalOptions& opt, const LlamaModel* baseline,
                    const ProgressFn& progress, const CancelToken* cancel) {
  const auto lm = causal_lm_view(model);
  const auto base = baseline ? causal_lm_view(*baseline) : nullptr;
  return evaluate(*lm, tokens, opt, base.get(), progress, cancel);
}

EvalResult evaluate(const CausalLm& model, std::span<const int32_t> tokens,
                    const EvalOptions& opt, const CausalLm* baseline,
                    const ProgressFn& progress, const CancelToken* cancel) {
  const int64_t V = model.vocab_size();
  if (baseline && baseline->vocab_size() != V)
    throw Error("", "baseline vocabulary (" + std::to_string(baseline->vocab_size()) +
                        ") differs from the model's (" + std::to_string(V) + ")");
  const auto windows = eval_windows(int64_t(tokens.size()), opt);
  const auto t0 = std::chrono::steady_clock::now();
  // Logits and KV caches for the longest window actually run, not opt.window: a short text
  // on a 128k-vocabulary model would otherwise hold window x vocabulary floats (1 GiB at a
  // 2048-token window) per model for nothing.
  int64_t longest = 1;
  for (const EvalWindow& w : windows) longest = std::max(longest, w.end - w.begin);
  const auto session = model.start(longest);
  const auto base_session = baseline ? baseline->start(longest) : nullptr;
  std::vector<float> logits(size_t(longest * V)), base(baseline ? logits.size() : 0);
  std::vector<double> lp, lq;
  double nll = 0, kl = 0;
  int64_t scored = 0, agree = 0, fed = 0;

  for (size_t w = 0; w < windows.size(); ++w) {
    if (cancel) cancel->throw_if_cancelled();
    const EvalWindow& win = windows[w];
    const auto span = tokens.subspan(size_t(win.begin), size_t(win.end - win.begin));
    // A window of a real-size model runs for minutes: cancel reaches inside the forward.
    run_cancellable(cancel, [&] {
      session->clear();
      session->forward(span, logits.data());
      if (base_session) {
        base_session->clear();
        base_session->forward(span, base.data());
      }
    });
    fed += win.end - win.begin;
    for (int64_t i = win.first_scored; i < win.end; ++i) {
      if (cancel && (i - win.first_scored) % 64 == 63) cancel->throw_if_cancelled();
      const int64_t row = i - 1 - win.begin;  // the position that predicts token i
      log_softmax(logits.data() + row * V, V, lq);
      nll -= lq[size_t(tokens[size_t(i)])];
      if (baseline) {
        log_softmax(base.data() + row * V, V, lp);
        double k = 0;
        for (int64_t j = 0; j < V; ++j) k += std::exp(lp[size_t(j)]) * (lp[size_t(j)] - lq[size_t(j)]);
        kl += k;
        agree += std::max_element(lp.begin(), lp.end()) - lp.begin() ==
                 std::max_element(lq.begin(), lq.end()) - lq.begin();
      }
      ++scored;
    }
    report(progress, "eval", "", double(w + 1) / double(windows.size()),
           "window " + std::to_string(w + 1) + "/" + std::to_string(windows.size()));
  }

  EvalResult r;
  r.scored = scored;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.tokens_per_second = r.seconds > 0 ? double(fed) / r.seconds : 0;
  if (scored) {
    r.nll = nll / double(scored);
    r.perplexity = std::exp(r.nll);
    r.has_baseline = baseline != nullptr;
    r.kl = kl / double(scored);
    r.top1 = double(agree) / double(scored);
  }
  return r;
}

}  // namespace mcw
