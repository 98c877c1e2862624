#include "engine/eval/latency.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/core/cancellable.h"
#include "engine/core/cpu_load.h"
#include "engine/core/error.h"

namespace mcw {

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(mid), v.end());
  if (v.size() % 2) return v[mid];
  const double upper = v[mid];
  return (*std::max_element(v.begin(), v.begin() + std::ptrdiff_t(mid)) + upper) / 2;
}

LatencyResult measure_latency(const LlamaModel& model, const LatencyOptions& opt,
                              const ProgressFn& progress, const CancelToken* cancel) {
  const LlamaStepFn step = [&](std::span<const int32_t> tokens, KVCache& cache, float* last) {
    llama_forward(model, tokens, cache, nullptr, last);
  };
  return measure_latency(model.cfg, step, opt, progress, cancel);
}

LatencyResult measure_latency(const LlamaConfig& cfg, const LlamaStepFn& step,
                              const LatencyOptions& opt, const ProgressFn& progress,
                              const CancelToken* cancel) {
  const int64_t ctx = cfg.max_seq_len;
  LatencyResult r;
  r.decode = std::clamp<int64_t>(opt.decode, 1, std::max<int64_t>(1, ctx / 2));
  r.prefill = std::min(opt.prefill, ctx - r.decode);
  if (r.prefill < 1 || opt.repeats < 1)
    throw Error("", "latency: the model's context (" + std::to_string(ctx) +
                        " tokens) is too short for a prefill and a decode step");
  const int64_t V = cfg.vocab_size;
  // Any fixed tokens do: the cost of a step does not depend on which token it is.
  std::vector<int32_t> prompt(size_t(r.prefill));
  for (int64_t i = 0; i < r.prefill; ++i) prompt[size_t(i)] = int32_t((i * 7919 + 13) % V);
  std::vector<float> logits(static_cast<size_t>(V));
  KVCache cache(cfg, r.prefill + r.decode);
  using clock = std::chrono::steady_clock;
  std::vector<double> decode_ms, prefill_tps;
  const CpuSample before = cpu_sample();
  for (int rep = 0; rep < opt.repeats; ++rep) {
    if (cancel) cancel->throw_if_cancelled();
    cache.clear();
    const auto t0 = clock::now();
    // A prefill of a real-size model runs for seconds: the cancel reaches inside it.
    run_cancellable(cancel, [&] { step(prompt, cache, logits.data()); });
    const auto t1 = clock::now();
    for (int64_t s = 0; s < r.decode; ++s) {
      if (cancel) cancel->throw_if_cancelled();  // a decode step of 8 B is a second or two
      // Greedy, like generation: the next token depends on the previous step's logits.
      const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      step(std::span<const int32_t>(&next, 1), cache, logits.data());
    }
    const auto t2 = clock::now();
    prefill_tps.push_back(double(r.prefill) / std::chrono::duration<double>(t1 - t0).count());
    decode_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count() /
                        double(r.decode));
    report(progress, "latency", "", double(rep + 1) / opt.repeats);
  }
  r.others_cpu = others_cpu_share(before, cpu_sample());
  r.ms_per_token = median(decode_ms);
  const auto [lo, hi] = std::minmax_element(decode_ms.begin(), decode_ms.end());
  r.ms_per_token_min = *lo, r.ms_per_token_max = *hi;
  r.prefill_tokens_per_s = median(prefill_tps);
  return r;
}

}  // namespace mcw
