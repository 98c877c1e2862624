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

class Gpt2Session final : public LmSession {
 public:
  Gpt2Session(const Gpt2Model& m, int64_t capacity) : m_(m), cache_(m.cfg, capacity) {}
  int64_t size() const override { return cache_.size(); }
  int64_t capacity() const override { return cache_.capacity(); }
  void clear() override { cache_.clear(); }
  void forward(std::span<const int32_t> tokens, float* logits, float* last_logits) override {
    gpt2_forward(m_, tokens, cache_, logits, last_logits);
  }

 private:
  const Gpt2Model& m_;
  Gpt2Cache cache_;
};

// Holds the model itself when it owns it, else refers to the caller's.
class LlamaLm final : public CausalLm {
 public:
  explicit LlamaLm(const LlamaModel& m) : m_(&m) {}
  explicit LlamaLm(LlamaModel&& m) : owned_(std::move(m)), m_(&*owned_) {}
  std::string architecture() const override { return "llama"; }
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

class Gpt2Lm final : public CausalLm {
 public:
  explicit Gpt2Lm(const Gpt2Model& m) : m_(&m) {}
  explicit Gpt2Lm(Gpt2Model&& m) : owned_(std::move(m)), m_(&*owned_) {}
  std::string architecture() const override { return "gpt2"; }
  int64_t vocab_size() const override { return m_->cfg.vocab_size; }
  int64_t context_length() const override { return m_->cfg.n_positions; }
  uint64_t parameter_count() const override { return m_->parameter_count(); }
  std::unique_ptr<LmSession> start(int64_t capacity) const override {
    return std::make_unique<Gpt2Session>(*m_, capacity);
  }

 private:
  std::optional<Gpt2Model> owned_;
  const Gpt2Model* m_;
};

}  // namespace

std::unique_ptr<CausalLm> causal_lm_view(const LlamaModel& model) {
  return std::make_unique<LlamaLm>(model);
}

std::unique_ptr<CausalLm> causal_lm_view(const Gpt2Model& model) {
  return std::make_unique<Gpt2Lm>(model);
}

ModelFamily model_family(const ModelFile& m) {
  return m.architecture == "gpt2" || m.architecture == "GPT2LMHeadModel" ? ModelFamily::Gpt2
                                                                         : ModelFamily::Llama;
}

void require_llama_family(const ModelFile& m, const std::string& what) {
  if (model_family(m) == ModelFamily::Gpt2)
    throw Error(m.path, "this is a GPT-2 model and " + what +
                            " is not supported for it: only llama-family models compress today");
}

std::unique_ptr<CausalLm> load_causal_lm(const ModelFile& m) {
  if (model_family(m) == ModelFamily::Gpt2) return std::make_unique<Gpt2Lm>(load_gpt2(m));
  return std::make_unique<LlamaLm>(load_llama(m));
}

}  // namespace mcw
