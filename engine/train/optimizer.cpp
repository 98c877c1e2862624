#include "engine/train/optimizer.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace mcw {

void AdamW::step(const std::vector<ParamRef>& params, double lr) {
  if (m_.empty()) {
    for (const ParamRef& p : params) {
      m_.emplace_back(p.param.size(), 0.0f);
      v_.emplace_back(p.param.size(), 0.0f);
    }
  }
  ++t_;
  const double b1 = opt_.beta1, b2 = opt_.beta2;
  const double c1 = 1 - std::pow(b1, double(t_)), c2 = 1 - std::pow(b2, double(t_));
  for (size_t i = 0; i < params.size(); ++i) {
    const ParamRef& p = params[i];
    float* m = m_[i].data();
    float* v = v_[i].data();
    const double wd = p.decay ? opt_.weight_decay : 0.0;
    const int64_t n = int64_t(p.param.size());
    tbb::parallel_for(int64_t(0), n, int64_t(4096), [&](int64_t j0) {
      for (int64_t j = j0; j < std::min(n, j0 + 4096); ++j) {
        const double g = p.grad[size_t(j)];
        const double mj = b1 * m[j] + (1 - b1) * g, vj = b2 * v[j] + (1 - b2) * g * g;
        m[j] = float(mj), v[j] = float(vj);
        const double w = p.param[size_t(j)];
        p.param[size_t(j)] = float(w - lr * ((mj / c1) / (std::sqrt(vj / c2) + opt_.eps) + wd * w));
      }
    });
  }
}

std::vector<ParamRef> llama_params(LlamaModel& model, const LlamaModel& grads) {
  auto w = model.named_tensors();
  auto g = grads.named_tensors();
  std::vector<ParamRef> out;
  for (size_t i = 0; i < w.size(); ++i) {
    Tensor* t = w[i].second;
    const size_t n = size_t(t->numel());
    const bool decay = t->ndim() == 2 && w[i].first != "model.embed_tokens.weight";
    out.push_back({std::span<float>(t->mutable_as<float>(), n),
                   std::span<const float>(g[i].second->as<float>(), n), decay});
  }
  return out;
}

double global_grad_norm(const LlamaModel& grads) {
  double ss = 0;
  for (const auto& [name, t] : grads.named_tensors()) {
    const float* p = t->as<float>();
    for (int64_t i = 0; i < t->numel(); ++i) ss += double(p[i]) * p[i];
  }
  return std::sqrt(ss);
}

double clip_grad_norm(LlamaModel& grads, double max_norm) {
  const double norm = global_grad_norm(grads);
  if (max_norm > 0 && norm > max_norm) {
    const float s = float(max_norm / norm);
    for (auto& [name, t] : grads.named_tensors()) {
      float* p = t->mutable_as<float>();
      for (int64_t i = 0; i < t->numel(); ++i) p[i] *= s;
    }
  }
  return norm;
}

double lr_at(const LrSchedule& s, int64_t step) {
  if (step < s.warmup) return s.lr * double(step + 1) / double(s.warmup);
  const double span = double(std::max<int64_t>(1, s.total - 1 - s.warmup));
  const double progress = std::min(1.0, double(step - s.warmup) / span);
  return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + std::cos(std::numbers::pi * progress));
}

}  // namespace mcw
