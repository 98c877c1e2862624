#include "engine/search/kl_meter.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/core/cancellable.h"
#include "engine/core/error.h"
#include "engine/search/block_forward.h"

namespace mcw {

struct KlMeter::Sums {
  std::vector<double> lp, lq;  // log-softmax rows (scratch)
  double nll = 0, kl = 0;
  int64_t scored = 0, agree = 0;
};

KlMeter::KlMeter(const LlamaModel& reference, std::span<const int32_t> tokens, int64_t window,
                 int64_t max_windows, const CancelToken* cancel,
                 const BlockInputOptions* keep_block_inputs)
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
  // Row r of a window predicts token begin + r + 1; the scored ones start at first_scored.
  auto keep = [&](size_t i, const float* all) {
    const EvalWindow& w = windows_[i];
    const size_t first_row = size_t(w.first_scored - 1 - w.begin);
    std::copy_n(all + first_row * size_t(vocab_), size_t(w.end - w.first_scored) * size_t(vocab_),
                logits_.begin() + ptrdiff_t(offset_[i] * size_t(vocab_)));
  };
  if (keep_block_inputs) {
    std::vector<std::span<const int32_t>> spans;
    for (const EvalWindow& w : windows_)
      spans.push_back(std::span(tokens_).subspan(size_t(w.begin), size_t(w.end - w.begin)));
    inputs_ = std::make_unique<BlockInputs>(reference, spans, *keep_block_inputs, keep, cancel);
    return;
  }
  KVCache cache(reference.cfg, window);
  std::vector<float> all(size_t(window * vocab_));
  for (size_t i = 0; i < windows_.size(); ++i) {
    if (cancel) cancel->throw_if_cancelled();
    const EvalWindow& w = windows_[i];
    run_cancellable(cancel, [&] {  // a real-size window: cancel reaches inside it
      cache.clear();
      llama_forward(reference, std::span(tokens_).subspan(size_t(w.begin), size_t(w.end - w.begin)),
                    cache, all.data());
    });
    keep(i, all.data());
  }
}

std::vector<int64_t> KlMeter::all_or(std::span<const int64_t> which) const {
  std::vector<int64_t> out(which.begin(), which.end());
  if (out.empty())
    for (int64_t i = 0; i < window_count(); ++i) out.push_back(i);
  for (const int64_t wi : out)
    if (wi < 0 || wi >= window_count()) throw Error("", "measurement window index out of range");
  return out;
}

void KlMeter::score(int64_t wi, const float* logits, Sums& s) const {
  const EvalWindow& w = windows_[size_t(wi)];
  for (int64_t i = w.first_scored; i < w.end; ++i) {
    const int64_t row = i - 1 - w.begin;
    log_softmax(logits + row * vocab_, vocab_, s.lq);
    s.nll -= s.lq[size_t(tokens_[size_t(i)])];
    const size_t ref_row = offset_[size_t(wi)] + size_t(i - w.first_scored);
    log_softmax(logits_.data() + ref_row * size_t(vocab_), vocab_, s.lp);
    double k = 0;
    for (int64_t j = 0; j < vocab_; ++j)
      k += std::exp(s.lp[size_t(j)]) * (s.lp[size_t(j)] - s.lq[size_t(j)]);
    s.kl += k;
    s.agree += std::max_element(s.lp.begin(), s.lp.end()) - s.lp.begin() ==
               std::max_element(s.lq.begin(), s.lq.end()) - s.lq.begin();
    ++s.scored;
  }
}

KlMeasurement KlMeter::finish(const Sums& s) const {
  KlMeasurement r;
  r.scored = s.scored;
  if (s.scored) {
    r.kl = s.kl / double(s.scored);
    r.nll = s.nll / double(s.scored);
    r.perplexity = std::exp(r.nll);
    r.top1 = double(s.agree) / double(s.scored);
  }
  return r;
}

static void check_vocab(const LlamaModel& model, int64_t vocab) {
  if (model.cfg.vocab_size != vocab)
    throw Error("", "model vocabulary (" + std::to_string(model.cfg.vocab_size) +
                        ") differs from the reference's (" + std::to_string(vocab) + ")");
}

KlMeasurement KlMeter::measure(const LlamaModel& model, std::span<const int64_t> which,
                               const CancelToken* cancel, const LlamaLinearFn* linear) const {
  check_vocab(model, vocab_);
  KVCache cache(model.cfg, window_);
  std::vector<float> logits(size_t(window_ * vocab_));
  Sums sums;
  for (const int64_t wi : all_or(which)) {
    if (cancel) cancel->throw_if_cancelled();
    const EvalWindow& w = windows_[size_t(wi)];
    run_cancellable(cancel, [&] {
      cache.clear();
      llama_forward(model, std::span(tokens_).subspan(size_t(w.begin), size_t(w.end - w.begin)),
                    cache, logits.data(), nullptr, linear);
    });
    score(wi, logits.data(), sums);
  }
  return finish(sums);
}

KlMeasurement KlMeter::measure_from_block(const LlamaModel& model, int64_t first_block,
                                          std::span<const int64_t> which,
                                          const CancelToken* cancel) const {
  check_vocab(model, vocab_);
  if (!inputs_) throw Error("", "this KL meter kept no block inputs");
  if (first_block < 0 || first_block >= inputs_->boundaries())
    throw Error("", "block " + std::to_string(first_block) + " is outside the model");
  std::vector<float> x(size_t(window_ * model.cfg.dim)), logits(size_t(window_ * vocab_));
  Sums sums;
  for (const int64_t wi : all_or(which)) {
    if (cancel) cancel->throw_if_cancelled();
    const int64_t T = inputs_->rows(size_t(wi));
    inputs_->get(first_block, size_t(wi), x.data());
    run_cancellable(cancel, [&] {
      for (int64_t l = first_block; l < model.cfg.n_layers; ++l) llama_block(model, l, x.data(), T);
      llama_head(model, x.data(), T, logits.data());
    });
    score(wi, logits.data(), sums);
  }
  return finish(sums);
}

}  // namespace mcw
