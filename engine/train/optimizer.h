// AdamW with decoupled weight decay, global-norm gradient clipping and the warm-up +
// cosine learning-rate schedule.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "engine/model/llama_model.h"

namespace mcw {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
};

// One parameter tensor and its gradient (same length).
struct ParamRef {
  std::span<float> param;
  std::span<const float> grad;
  bool decay;  // weight decay applies to this tensor
};

// Per step t (1-based): m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g²,
// p -= lr·( (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + eps) + wd·p ) with wd only where decay.
class AdamW {
 public:
  explicit AdamW(AdamWOptions opt) : opt_(opt) {}
  // The parameter list must have the same tensors (sizes) on every call.
  void step(const std::vector<ParamRef>& params, double lr);
  int64_t steps() const { return t_; }
  // The moments per parameter tensor (empty before the first step), for a checkpoint; and
  // putting them back, so that the next step is the one the stopped optimizer would take.
  const std::vector<std::vector<float>>& first_moments() const { return m_; }
  const std::vector<std::vector<float>>& second_moments() const { return v_; }
  void restore(int64_t steps, std::vector<std::vector<float>> m,
               std::vector<std::vector<float>> v) {
    t_ = steps, m_ = std::move(m), v_ = std::move(v);
  }

 private:
  AdamWOptions opt_;
  int64_t t_ = 0;
  std::vector<std::vector<float>> m_, v_;
};

// The weights of `model` paired with `grads` (from zeros_like). Decay goes to the 2-D
// projection matrices and an untied LM head; the token embedding (also the head when tied),
// the norm weights and the biases are not decayed.
std::vector<ParamRef> llama_params(LlamaModel& model, const LlamaModel& grads);

// sqrt(Σ g²) over every tensor (accumulated in double).
double global_grad_norm(const LlamaModel& grads);
// Scales every gradient by max_norm / norm when the norm exceeds max_norm (> 0); returns
// the norm before clipping.
double clip_grad_norm(LlamaModel& grads, double max_norm);

struct LrSchedule {
  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup = 0, total = 1;
};
// Step s (0-based): linear warm-up lr·(s+1)/warmup for s < warmup, then a cosine from lr
// down to min_lr, reached at s = total - 1 and kept after.
double lr_at(const LrSchedule& s, int64_t step);

}  // namespace mcw
