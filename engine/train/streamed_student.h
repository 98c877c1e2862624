// The student of a LoRA recovery at any size. Its frozen weights stay where they are: the
// model's tensors in their dtype (a loaded model's are views of the mapped file) and the
// compressed layers packed; one block at a time is decoded to f32, with that block's
// adapters merged in (W' = W + s·B·A), run, and dropped. A training step keeps only each
// block's input and recomputes the block in the backward pass (activation checkpointing),
// and the head's logits exist one window at a time; so the anonymous memory is one block's
// weights and activations, B·T·D per block for the saved inputs, and T·V for a window's
// logits, whatever the model's size (streamed_recovery_bytes).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/core/progress.h"
#include "engine/model/llama_model.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/lora.h"

namespace mcw {

// `packed` by name, each checked to be a weight of `model` of its shape (mcw::Error naming
// `source`, the packed file, otherwise).
std::map<std::string, const CompressedTensor*> packed_by_name(
    const LlamaModel& model, std::span<const CompressedTensor> packed, const std::string& source);

class StreamedStudent {
 public:
  // `base`, `packed` and `adapters` must outlive the student. A packed layer replaces the
  // base's weight of its name (mcw::Error naming `packed_source` for a layer the model lacks
  // or of another shape); `adapters` may be null (no adapters) and are read at each step,
  // so an optimizer may update them in place between steps.
  StreamedStudent(const LlamaModel& base, std::span<const CompressedTensor> packed,
                  const LoraAdapters* adapters, const std::string& packed_source = "");

  // One training step over B windows of T + 1 tokens: the mean loss (KL(teacher ‖ model)
  // with teacher_probs [B·T, vocab], else the next tokens' cross-entropy), and each
  // linear's input x and output gradient dy of its backward to `linear`, for the gradient
  // of that mean. What llama_train_forward + llama_frozen_backward give on the model with
  // the adapters merged, up to f32 summation order.
  double train_step(std::span<const int32_t> windows, int64_t B, int64_t T,
                    const float* teacher_probs, const LinearGradFn& linear,
                    const CancelToken* cancel = nullptr);

  // Held-out: for each of n windows of T + 1 tokens (run `group` at a time), its mean
  // next-token cross-entropy added to *ce and, with teacher_probs [n·T, vocab], its mean KL
  // added to *kl.
  void evaluate(std::span<const int32_t> windows, int64_t n, int64_t T, int64_t group,
                const float* teacher_probs, double* ce, double* kl,
                const CancelToken* cancel = nullptr);

  // The model's next-token probabilities for n windows of T + 1 tokens (inputs their first
  // T; run `group` at a time) into out [n·T, vocab]: llama_forward's logits softmaxed, with
  // the weights read once per group rather than once per window, and Cancelled between
  // blocks. What a teacher gives a distillation.
  void probabilities(std::span<const int32_t> windows, int64_t n, int64_t T, int64_t group,
                     float* out, const CancelToken* cancel = nullptr);

  // Called after each block a pass runs (forward, or recomputation and backward): progress
  // inside a step, which at real size takes minutes.
  void set_block_hook(std::function<void()> fn) { block_hook_ = std::move(fn); }

  // Block `layer` with f32 weights: decoded, packed layers in place of the base's, adapters
  // merged; norms and biases shared with the base.
  LlamaLayer block(int64_t layer) const;

 private:
  // Runs the blocks over x [B·T, D] (the embeddings), keeping each block's input in
  // `saved` when it is not null.
  void forward_blocks(std::vector<float>& x, int64_t B, int64_t T,
                      std::vector<std::vector<float>>* saved, const CancelToken* cancel);
  // Runs n windows `group` at a time; fn(w, xn, targets) for each window w with its final
  // norm's output xn [T, D] and next tokens [T].
  using WindowFn = std::function<void(int64_t w, const float* xn, const int32_t* targets)>;
  void for_each_window(std::span<const int32_t> windows, int64_t n, int64_t T, int64_t group,
                       const CancelToken* cancel, const WindowFn& fn);
  // B windows through the blocks (inputs and targets split from them; each block's input
  // kept in `saved` when it is not null): the last block's output x, the final norm's
  // output xn [B·T, D] and its inverse RMS (what the norm's backward needs).
  struct FinalHidden {
    std::vector<float> x, xn, inv_rms;
  };
  FinalHidden final_hidden(std::span<const int32_t> windows, int64_t B, int64_t T,
                           std::vector<int32_t>& targets, std::vector<std::vector<float>>* saved,
                           const CancelToken* cancel);
  // Row r of the final norm's output [rows, D] times the head: logits [T, vocab].
  void head_logits(const float* xn, int64_t T, float* logits) const;

  const LlamaModel& base_;
  const LoraAdapters* adapters_;
  std::map<std::string, const CompressedTensor*> packed_;
  std::map<std::string, const LoraAdapter*> adapted_;
  std::vector<float> inv_freq_;
  std::function<void()> block_hook_;
  LayerActivations act_;    // one block's, reused
  BlockGradients scratch_;  // one block's gradients, reused
};

}  // namespace mcw
