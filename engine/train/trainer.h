// Trains a llama-family model from scratch on a token stream: random windows of T + 1
// tokens, AdamW with clipping, warm-up + cosine schedule, gradient accumulation, periodic
// evaluation on held-out windows. Deterministic for a seed (and a deterministic GEMM).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "engine/core/progress.h"
#include "engine/model/llama_model.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/optimizer.h"

namespace mcw {

struct TrainOptions {
  int64_t steps = 1000;
  int64_t batch = 16;         // windows per optimizer step
  int64_t micro_batches = 1;  // the batch is split into this many equal forward/backward passes
  int64_t seq_len = 128;      // T: predicted positions per window
  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup = 100;
  AdamWOptions adamw;
  double clip = 1.0;  // max global gradient norm; <= 0 disables clipping
  uint64_t seed = 1;
  int64_t eval_every = 100;   // steps; 0 = only after the last step
  int64_t eval_windows = 32;  // held-out windows per evaluation (fewer if the text is short)
  double init_std = 0.02;
};

struct TrainStep {
  int64_t step = 0, total = 0;  // 1-based
  double loss = 0;              // mean training loss of the step's batch
  double lr = 0, grad_norm = 0;
  double tokens_per_second = 0;  // predicted tokens per second of training (evals excluded)
  double seconds = 0;            // since training started
  std::optional<double> eval_loss;
};

struct TrainResult {
  LlamaModel model;
  std::vector<TrainStep> history;
};

using TrainStepFn = std::function<void(const TrainStep&)>;

// Random init (seeded): every matrix and the embedding ~ N(0, init_std²), with the
// residual projections o_proj and down_proj scaled by 1/sqrt(2·n_layers) (GPT-2's
// choice); norm weights 1, biases 0.
LlamaModel init_llama(const LlamaConfig& cfg, uint64_t seed, double init_std = 0.02);

// B windows of T + 1 tokens at random starts of `tokens` (drawn from `sampler`, one per
// window, in order) into `out` (B·(T + 1) tokens): a training batch.
void random_windows(std::span<const int32_t> tokens, int64_t B, int64_t T, std::mt19937_64& sampler,
                    std::vector<int32_t>& out);

// Mean loss over up to `max_windows` evenly spaced windows of seq_len + 1 tokens (no
// backward); the same windows every time.
double eval_loss(const LlamaModel& m, std::span<const int32_t> tokens, int64_t seq_len,
                 int64_t max_windows, const CancelToken* cancel = nullptr);

// Throws mcw::Error on options that cannot work (the file name is left empty), Cancelled
// when `cancel` fires (checked between layers, so within a fraction of a step).
TrainResult train_llama(const LlamaConfig& cfg, std::span<const int32_t> train_tokens,
                        std::span<const int32_t> eval_tokens, const TrainOptions& opt,
                        const ProgressFn& progress = {}, const CancelToken* cancel = nullptr,
                        const TrainStepFn& on_step = {});

// One optimizer step's gradients: sums the gradients of `micro_batches` equal slices of
// `windows` (B windows of T + 1 tokens) into `grads` (zeroed first), each weighted
// 1 / micro_batches; returns the mean loss. `workspace` (optional) keeps the activation
// buffers between calls. Exposed for the accumulation test.
double accumulate_gradients(const LlamaModel& m, std::span<const int32_t> windows, int64_t B,
                            int64_t T, int64_t micro_batches, LlamaModel& grads,
                            const CancelToken* cancel = nullptr,
                            LlamaActivations* workspace = nullptr);

}  // namespace mcw
