// A decoder-only language model as evaluation and generation see it, whatever its family
// (llama, GPT-2): a vocabulary, a context length, and sessions that run tokens through the
// model with a KV cache. Evaluation and `mcw eval` / `mcw generate` are written once
// against this; every family runs the llama decoder (GPT-2 as its variant).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "engine/io/model_file.h"
#include "engine/model/gpt2_model.h"
#include "engine/model/llama_model.h"

namespace mcw {

// The keys and values of one sequence in one model.
class LmSession {
 public:
  virtual ~LmSession() = default;
  virtual int64_t size() const = 0;      // positions seen so far
  virtual int64_t capacity() const = 0;  // positions the cache holds
  virtual void clear() = 0;
  // Runs `tokens` at positions size()... and appends them. Writes the logits of every
  // position to `logits` ([tokens.size(), vocab]) when it is not null, or only of the last
  // position to `last_logits` ([vocab]) when that is not null.
  virtual void forward(std::span<const int32_t> tokens, float* logits,
                       float* last_logits = nullptr) = 0;
};

class CausalLm {
 public:
  CausalLm() = default;
  CausalLm(const CausalLm&) = delete;  // views and sessions point into it
  CausalLm& operator=(const CausalLm&) = delete;
  virtual ~CausalLm() = default;
  virtual std::string architecture() const = 0;  // "llama", "gpt2"
  virtual int64_t vocab_size() const = 0;
  // The longest context the model was built for. GPT-2 cannot go past it (no position
  // embedding there: its forward refuses); llama's rotary positions extrapolate.
  virtual int64_t context_length() const = 0;
  virtual uint64_t parameter_count() const = 0;
  virtual std::unique_ptr<LmSession> start(int64_t capacity) const = 0;
};

// Views of a model owned elsewhere (it must outlive the view and its sessions).
std::unique_ptr<CausalLm> causal_lm_view(const LlamaModel& model);

enum class ModelFamily { Llama, Gpt2 };
// GPT-2 when the file says so (HF model_type / architectures, GGUF general.architecture);
// everything else goes to the llama loader, which names what it does not support.
ModelFamily model_family(const ModelFile& m);

// Throws mcw::Error(path, ...) for a GPT-2, for the tools that train (recovery, adapters):
// "<what> needs llama's block".
void require_llama_family(const ModelFile& m, const std::string& what);

// Loads any supported decoder; throws mcw::Error as load_llama / load_gpt2 do.
std::unique_ptr<CausalLm> load_causal_lm(const ModelFile& m);

}  // namespace mcw
