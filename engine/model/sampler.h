// Picks the next token from logits: greedy, or sampling with temperature and nucleus
// (top-p) truncation, reproducible for a seed.
#pragma once
#include <cstdint>
#include <random>
#include <span>

namespace mcw {

struct SamplerOptions {
  double temperature = 0;  // 0: greedy
  double top_p = 1;        // keep the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& opt);
  int32_t next(std::span<const float> logits);

 private:
  SamplerOptions opt_;
  std::mt19937_64 rng_;
};

}  // namespace mcw
