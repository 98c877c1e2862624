// KL divergence to a reference model on a fixed set of token windows, with the reference
// logits computed once: the measurement a sensitivity scan and a mixed-precision search
// repeat for hundreds of candidate models. Numbers equal evaluate() with a baseline on the
// same tokens and windows (the same windows, the same arithmetic).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/core/progress.h"
#include "engine/eval/perplexity.h"
#include "engine/model/llama_model.h"
#include "engine/search/block_inputs.h"

namespace mcw {

struct KlMeasurement {
  int64_t scored = 0;
  double kl = 0;          // mean KL(reference || model) per scored token (nats)
  double nll = 0;         // mean negative log-likelihood of the text
  double perplexity = 0;  // exp(nll)
  double top1 = 0;        // share of scored positions where both argmaxes agree
};

class KlMeter {
 public:
  // Windows of `window` tokens laid end to end (stride = window) over the first
  // max_windows * window tokens. Holds the reference's logits of every scored position:
  // scored tokens x vocabulary floats. With `keep_block_inputs`, the same pass also keeps
  // the hidden states entering every block (see BlockInputs), for measure_from_block.
  // Throws mcw::Error when fewer than 2 tokens are given or the window is out of range for
  // the model; mcw::Cancelled when cancelled.
  KlMeter(const LlamaModel& reference, std::span<const int32_t> tokens, int64_t window,
          int64_t max_windows, const CancelToken* cancel = nullptr,
          const BlockInputOptions* keep_block_inputs = nullptr);

  int64_t window_count() const { return int64_t(windows_.size()); }
  int64_t window() const { return window_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }  // the tokens measured
  int64_t vocab() const { return vocab_; }

  // Over every window, or only the windows listed (indices < window_count()). Thread-safe:
  // several threads may measure different models at once.
  // `linear`: the forward's linear products on other weights than the model's (a search
  // candidate assembled from a LayerBank), see llama_forward.
  KlMeasurement measure(const LlamaModel& model, std::span<const int64_t> which = {},
                        const CancelToken* cancel = nullptr,
                        const LlamaLinearFn* linear = nullptr) const;
  // The same measurement for a model that equals the reference in blocks before
  // `first_block` (and the embeddings): only blocks first_block.. and the head run, from
  // the kept block inputs. Equal to measure() bit for bit. Needs keep_block_inputs.
  KlMeasurement measure_from_block(const LlamaModel& model, int64_t first_block,
                                   std::span<const int64_t> which = {},
                                   const CancelToken* cancel = nullptr) const;
  const BlockInputs* block_inputs() const { return inputs_.get(); }
  // Bytes of the reference logits: scored tokens x vocabulary x 4 (1 GB for 8 windows of
  // 256 tokens at a 128256-token vocabulary).
  uint64_t reference_bytes() const { return uint64_t(logits_.size()) * sizeof(float); }
  static uint64_t reference_bytes(int64_t scored_tokens, int64_t vocab) {
    return uint64_t(scored_tokens) * uint64_t(vocab) * sizeof(float);
  }

 private:
  struct Sums;
  // Adds window wi's scores, its logits [rows, vocab] from the window's first token on.
  void score(int64_t wi, const float* logits, Sums& sums) const;
  KlMeasurement finish(const Sums& sums) const;
  std::vector<int64_t> all_or(std::span<const int64_t> which) const;

  int64_t window_ = 0, vocab_ = 0;
  std::vector<int32_t> tokens_;
  std::vector<EvalWindow> windows_;
  std::vector<size_t> offset_;  // first row of each window in logits_
  std::vector<float> logits_;   // reference logits of the scored positions, [rows, vocab]
  std::unique_ptr<BlockInputs> inputs_;
};

}  // namespace mcw
