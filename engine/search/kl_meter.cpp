#include "engine/search/kl_meter.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/core/error.h"

namespace mcw {

KlMeter::KlMeter(const LlamaModel& reference, std::span<const int32_t> tokens, int64_t window,
                 int64_t max_windows, const CancelToken* cancel)
    : window_(window), vocab_(reference.cfg.vocab_size) {
  if (window < 2 || window > reference.cfg.max_seq_len)
    throw Error("", "measurement window " + std::to_string(window) + " is outside 2.." +
                        std::to_string(reference.cfg.max_seq_len) + " (the model's context)");
  if (max_windows < 1) throw Error("", "at least one measurement window is needed");
  const size_t n = size_t(std::min<int64_t>(int64_t(tokens.size()), max_windows * window));
  if (n < 2) throw Error("", "at least 2 tokens are needed to measure KL divergence");
  tokens_.assign(tokens.begin(), tokens.begin() + ptrdiff_t(n));
  windows_ = eval_windows(int64_t(n), {window, window});
  size_t rows = 0;
  for (const EvalWindow& w : windows_)
    offset_.push_back(rows), rows += size_t(w.end - w.first_scored);
  logits_.resize(rows * size_t(vocab_));
  KVCache cache(reference.cfg, window);
  std::vector<float> all(size_t(window * vocab_));
  for (size_t i = 0; i < windows_.size(); ++i) {
    if (cancel) cancel->throw_if_cancelled();
    const EvalWindow& w = windows_[i];
    cache.clear();
    llama_forward(reference, std::span(tokens_).subspan(size_t(w.begin), size_t(w.end - w.begin)),
                  cache, all.data());
    // Row r of the window predicts token begin + r + 1; the scored ones start at first_scored.
    const size_t first_row = size_t(w.first_scored - 1 - w.begin);
    std::copy_n(all.begin() + ptrdiff_t(first_row * size_t(vocab_)),
                size_t(w.end - w.first_scored) * size_t(vocab_),
                logits_.begin() + ptrdiff_t(offset_[i] * size_t(vocab_)));
  }
}

KlMeasurement KlMeter::measure(const LlamaModel& model, std::span<const int64_t> which,
                               const CancelToken* cancel) const {
  if (model.cfg.vocab_size != vocab_)
    throw Error("", "model vocabulary (" + std::to_string(model.cfg.vocab_size) +
                        ") differs from the reference's (" + std::to_string(vocab_) + ")");
  std::vector<int64_t> all;
  if (which.empty()) {
    for (int64_t i = 0; i < window_count(); ++i) all.push_back(i);
    which = all;
  }
  KVCache cache(model.cfg, window_);
  std::vector<float> logits(size_t(window_ * vocab_));
  std::vector<double> lp, lq;
  double nll = 0, kl = 0;
  int64_t scored = 0, agree = 0;
  for (const int64_t wi : which) {
    if (cancel) cancel->throw_if_cancelled();
    if (wi < 0 || wi >= window_count()) throw Error("", "measurement window index out of range");
    const EvalWindow& w = windows_[size_t(wi)];
    cache.clear();
    llama_forward(model, std::span(tokens_).subspan(size_t(w.begin), size_t(w.end - w.begin)),
                  cache, logits.data());
    for (int64_t i = w.first_scored; i < w.end; ++i) {
      const int64_t row = i - 1 - w.begin;
      log_softmax(logits.data() + row * vocab_, vocab_, lq);
      nll -= lq[size_t(tokens_[size_t(i)])];
      const size_t ref_row = offset_[size_t(wi)] + size_t(i - w.first_scored);
      log_softmax(logits_.data() + ref_row * size_t(vocab_), vocab_, lp);
      double k = 0;
      for (int64_t j = 0; j < vocab_; ++j)
        k += std::exp(lp[size_t(j)]) * (lp[size_t(j)] - lq[size_t(j)]);
      kl += k;
      agree += std::max_element(lp.begin(), lp.end()) - lp.begin() ==
               std::max_element(lq.begin(), lq.end()) - lq.begin();
      ++scored;
    }
  }
  KlMeasurement r;
  r.scored = scored;
  if (scored) {
    r.kl = kl / double(scored);
    r.nll = nll / double(scored);
    r.perplexity = std::exp(r.nll);
    r.top1 = double(agree) / double(scored);
  }
  return r;
}

}  // namespace mcw
