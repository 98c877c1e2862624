#include "engine/train/lora_lm.h"

#include <map>
#include <vector>

#include "engine/kernels/gemm.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/llama_tensors.h"

namespace mcw {

namespace {

using Key = std::pair<int64_t, int>;  // (layer, LlamaLinear)

class LoraSession final : public LmSession {
 public:
  LoraSession(const LlamaModel& m, const std::map<Key, const LoraAdapter*>& adapted, double scale,
              int64_t capacity)
      : m_(m), cache_(m.cfg, capacity) {
    hook_ = [&m, &adapted, scale, this](int64_t layer, LlamaLinear which, const float* x, int64_t T,
                                        float* y, const float* bias, bool accumulate) {
      const Tensor& w = linear_weight(m, layer, which);
      matmul_wt_stored(x, w, y, T, bias, accumulate);
      const auto it = adapted.find({layer, int(which)});
      if (it == adapted.end()) return;
      const LoraAdapter& a = *it->second;
      const int64_t r = a.a.dim(0), in = a.a.dim(1), out = a.b.dim(0);
      u_.resize(size_t(T * r));
      matmul_wt(x, a.a.as<float>(), u_.data(), T, r, in);  // u = x·Aᵀ
      for (float& v : u_) v *= float(scale);
      matmul_wt(u_.data(), a.b.as<float>(), y, T, out, r, nullptr, /*accumulate=*/true);
    };
  }
  int64_t size() const override { return cache_.size(); }
  int64_t capacity() const override { return cache_.capacity(); }
  void clear() override { cache_.clear(); }
  void forward(std::span<const int32_t> tokens, float* logits, float* last_logits) override {
    llama_forward(m_, tokens, cache_, logits, last_logits, &hook_);
  }

 private:
  const LlamaModel& m_;
  KVCache cache_;
  LlamaLinearFn hook_;
  std::vector<float> u_;
};

class LoraLm final : public CausalLm {
 public:
  LoraLm(const LlamaModel& m, const LoraAdapters& adapters, const std::string& source)
      : m_(m), scale_(adapters.scale()) {
    for (const LoraAdapter& a : adapters.adapters) {
      // Only block linears run through llama_forward's hook under (layer, role).
      int64_t layer = -1;
      const BlockTensor* t = find_block_tensor(a.name, &layer);
      const bool found = t && t->linear() && layer < m.cfg.n_layers && t->present(m.cfg);
      check_adapter_fits(found ? &(m.layers[size_t(layer)].*t->member) : nullptr, a, source);
      adapted_[{layer, int(block_linear(t->role))}] = &a;
    }
  }
  std::string architecture() const override { return "llama"; }
  int64_t vocab_size() const override { return m_.cfg.vocab_size; }
  int64_t context_length() const override { return m_.cfg.max_seq_len; }
  uint64_t parameter_count() const override { return m_.parameter_count(); }
  std::unique_ptr<LmSession> start(int64_t capacity) const override {
    return std::make_unique<LoraSession>(m_, adapted_, scale_, capacity);
  }

 private:
  const LlamaModel& m_;
  double scale_;
  std::map<Key, const LoraAdapter*> adapted_;
};

}  // namespace

std::unique_ptr<CausalLm> lora_lm_view(const LlamaModel& model, const LoraAdapters& adapters,
                                       const std::string& source) {
  return std::make_unique<LoraLm>(model, adapters, source);
}

}  // namespace mcw
