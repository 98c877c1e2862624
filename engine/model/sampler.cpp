#include "engine/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/core/error.h"

namespace mcw {

Sampler::Sampler(const SamplerOptions& opt) : opt_(opt), rng_(opt.seed) {
  if (!(opt.temperature >= 0)) throw Error("", "temperature must be 0 or more");
  if (!(opt.top_p > 0 && opt.top_p <= 1)) throw Error("", "top-p must be in (0, 1]");
}

int32_t Sampler::next(std::span<const float> logits) {
  const auto argmax = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  if (opt_.temperature == 0) return argmax;
  const size_t n = logits.size();
  std::vector<double> p(n);
  double z = 0;
  for (size_t i = 0; i < n; ++i)
    z += p[i] = std::exp((double(logits[i]) - double(logits[size_t(argmax)])) / opt_.temperature);
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return p[size_t(a)] != p[size_t(b)] ? p[size_t(a)] > p[size_t(b)] : a < b;
  });
  // Nucleus: the most probable tokens until their mass reaches top_p.
  size_t keep = 0;
  double mass = 0;
  while (keep < n && (keep == 0 || mass < opt_.top_p * z)) mass += p[size_t(order[keep++])];
  double r = std::uniform_real_distribution<double>(0, mass)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= p[size_t(order[i])];
    if (r < 0) return order[i];
  }
  return order[keep - 1];
}

}  // namespace mcw
