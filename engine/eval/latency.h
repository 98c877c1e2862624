// Latency of a llama model on this machine's kernels: a prefill of P tokens, then D decode
// steps of one token each on the KV cache, as generation does. Repeated R times and the
// median kept, so one slow repetition (page faults on first touch, another process)
// does not decide the number.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/core/progress.h"
#include "engine/model/llama_model.h"

namespace mcw {

struct LatencyOptions {
  int64_t prefill = 64;  // shortened when prefill + decode exceed the model's context
  int64_t decode = 32;
  int repeats = 3;
};

struct LatencyResult {
  int64_t prefill = 0, decode = 0;  // what was actually run
  double ms_per_token = 0;          // decode: median over repetitions of (time / steps)
  double ms_per_token_min = 0, ms_per_token_max = 0;  // the spread over repetitions
  double prefill_tokens_per_s = 0;  // median over repetitions
  // Share of the machine's CPU time that other processes (and a hypervisor) took while it
  // ran (cpu_load.h); above kBusyShare the figure is flagged as taken on a busy machine.
  double others_cpu = 0;
  static constexpr double kBusyShare = 0.10;
  bool busy() const { return others_cpu > kBusyShare; }
};

// Throws mcw::Error when the context is too short for one prefill token and one decode
// step; mcw::Cancelled between steps when `cancel` fires.
LatencyResult measure_latency(const LlamaModel& model, const LatencyOptions& opt = {},
                              const ProgressFn& progress = {}, const CancelToken* cancel = nullptr);

// The same measurement for any forward pass with llama_forward's contract (run `tokens`,
// append them to the cache, write the last position's logits), e.g. on packed weights.
using LlamaStepFn =
    std::function<void(std::span<const int32_t> tokens, KVCache& cache, float* last_logits)>;
LatencyResult measure_latency(const LlamaConfig& cfg, const LlamaStepFn& step,
                              const LatencyOptions& opt = {}, const ProgressFn& progress = {},
                              const CancelToken* cancel = nullptr);

double median(std::vector<double> v);  // mean of the middle two for an even count; NaN if empty

}  // namespace mcw
