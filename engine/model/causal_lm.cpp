#include "engine/model/causal_lm.h"

#include <optional>

#include "engine/core/error.h"

namespace mcw {

namespace {

class LlamaSession final : public LmSession {
 public:
  LlamaSession(const LlamaModel& m, int64_t capacity) : m_(m), cache_(m.cfg, capacity) {}
  int64_t size() const override { return cache_.size(); }
  int64_t capacity() const override { return cache_.capacity(); }
  void clear() override { cache_.clear(); }
  void forward(std::span<const int32_t> tokens, float* logits, float* last_logits) override {
    llama_forward(m_, tokens, cache_, logits, last_logits);
  }

 private:
  const LlamaModel& m_;
  KVCache cache_;
};

// Holds the model itself when it owns it, else refers to the caller's.
class LlamaLm final : public CausalLm {
 public:
  explicit LlamaLm(const LlamaModel& m) : m_(&m) {}
  explicit LlamaLm(LlamaModel&& m) : owned_(std::move(m)), m_(&*owned_) {}
  std::string architecture() const override {
    return m_->cfg.model_type == "gpt2" ? "gpt2" : "llama";
  }
  int64_t vocab_size() const override { return m_->cfg.vocab_size; }
  int64_t context_length() const override { return m_->cfg.max_seq_len; }
  uint64_t parameter_count() const override { return m_->parameter_count(); }
  std::unique_ptr<LmSession> start(int64_t capacity) const override {
    return std::make_unique<LlamaSession>(*m_, capacity);
  }

 private:
  std::optional<LlamaModel> owned_;
  const LlamaModel* m_;
};

}  // namespace

std::unique_ptr<CausalLm> causal_lm_view(const LlamaModel& model) {
  return std::make_unique<LlamaLm>(model);
}

ModelFamily model_family(const ModelFile& m) {
  return is_gpt2(m) ? ModelFamily::Gpt2 : ModelFamily::Llama;
}

void require_llama_family(const ModelFile& m, const std::string& what) {
  if (model_family(m) == ModelFamily::Gpt2)
    throw Error(m.path,
                "this is a GPT-2 model, and " + what +
                    " needs llama's block: MCW trains no GPT-2 (it runs and compresses one)");
}

std::unique_ptr<CausalLm> load_causal_lm(const ModelFile& m) {
  return std::make_unique<LlamaLm>(load_llama(m));
}

}  // namespace mcw
