// Perplexity, KL divergence and top-1 agreement over a token stream with a sliding window
// (Hugging Face's definition): windows start at 0, S, 2S, ... and span W tokens; each
// token is scored once, in the first window where it is new, and never as a window's
// first token (it has no context there), so token 0 is never scored.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "engine/core/progress.h"
#include "engine/model/causal_lm.h"
#include "engine/model/llama_model.h"

namespace mcw {

struct EvalOptions {
  int64_t window = 256;
  int64_t stride = 256;  // 1 <= stride <= window
};

// The window `mcw eval` and `mcw compress --eval` use unless told: the papers' 2048
// (GPTQ, AWQ, SparseGPT, Wanda all report perplexity on 2048-token windows), or the
// model's whole context when that is shorter.
inline int64_t default_eval_window(int64_t context) { return context < 2 ? 2 : context < 2048 ? context : 2048; }

struct EvalWindow {
  int64_t begin, end;   // tokens [begin, end) are fed to the model
  int64_t first_scored;  // tokens [first_scored, end) are scored
};
// Throws mcw::Error on a window or stride out of range.
std::vector<EvalWindow> eval_windows(int64_t n_tokens, const EvalOptions& opt);

struct EvalResult {
  int64_t scored = 0;
  double nll = 0;         // mean negative log-likelihood (nats per token)
  double perplexity = 0;  // exp(nll)
  bool has_baseline = false;
  double kl = 0;          // mean KL(baseline || model) per scored token (nats)
  double top1 = 0;        // share of scored positions where both models' argmax agree
  double seconds = 0;
  double tokens_per_second = 0;  // tokens fed through the model (prefill)
};

// log-softmax of one row of logits, in double: what every score here is computed from,
// exposed so that other measurements (engine/search's KL meter) report the same numbers.
void log_softmax(const float* x, int64_t n, std::vector<double>& out);

// Any decoder; a window longer than a GPT-2's context throws mcw::Error.
EvalResult evaluate(const CausalLm& model, std::span<const int32_t> tokens,
                    const EvalOptions& opt, const CausalLm* baseline = nullptr,
                    const ProgressFn& progress = {}, const CancelToken* cancel = nullptr);
EvalResult evaluate(const LlamaModel& model, std::span<const int32_t> tokens,
                    const EvalOptions& opt, const LlamaModel* baseline = nullptr,
                    const ProgressFn& progress = {}, const CancelToken* cancel = nullptr);

}  // namespace mcw
