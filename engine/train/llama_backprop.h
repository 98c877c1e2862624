// Training forward and backward of the llama-family decoder over a batch of B windows of
// T + 1 tokens: inputs are a window's first T tokens, targets its last T (next-token
// prediction), and the loss is the mean cross-entropy over all B·T predictions.
// Gradients live in a LlamaModel of the same shapes (zeros_like), so they line up with
// the weights tensor for tensor, including named_tensors().
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/core/progress.h"
#include "engine/model/llama_model.h"

namespace mcw {

struct LayerActivations {
  std::vector<float> x_in, inv_rms1, xn1;   // residual input, attention rmsnorm
  std::vector<float> q, k, v;               // after bias and rotary
  std::vector<float> probs, att;            // softmax [B, Hq, T, T], attention output
  std::vector<float> x_mid, inv_rms2, xn2;  // residual after attention, ffn rmsnorm
  std::vector<float> gate, up, act;         // pre-activations and silu(gate)·up
};

struct LlamaActivations {
  int64_t B = 0, T = 0;
  std::vector<int32_t> inputs, targets;  // B·T each
  std::vector<LayerActivations> layers;
  std::vector<float> x_final, inv_rms_final, xn_final;
  std::vector<float> probs;  // softmax of the logits [B·T, vocab]
  // Distillation: the teacher's probabilities [B·T, vocab] the loss is measured against;
  // empty when the loss is the cross-entropy of the next tokens.
  std::vector<float> soft_targets;
  double loss = 0;  // mean cross-entropy, or mean KL(teacher ‖ model), in nats per token
};

// A model of zero tensors with the same config, shapes and names.
// Throws mcw::Error unless the backward passes here cover the model's block: llama's
// (RMSNorm, rotary positions, SwiGLU), not GPT-2's variant.
void require_trainable(const LlamaConfig& c);
LlamaModel zeros_like(const LlamaModel& m);
// An independent copy (Tensor copies share bytes; this one does not).
LlamaModel clone_model(const LlamaModel& m);
void fill_zero(LlamaModel& grads);

// `windows` holds B·(T + 1) tokens. Returns the mean loss (also act.loss): the
// cross-entropy of the next tokens, or with `teacher_probs` ([B·T, vocab], a teacher
// model's next-token probabilities at the same positions) the mean KL(teacher ‖ model),
// which the backward pass then differentiates. Throws mcw::Error on a token outside the
// vocabulary, Cancelled between layers.
double llama_train_forward(const LlamaModel& m, std::span<const int32_t> windows, int64_t B,
                           int64_t T, LlamaActivations& act, const CancelToken* cancel = nullptr,
                           const float* teacher_probs = nullptr);

// Adds loss_weight · d(mean loss)/d(weight) into `grads` (from zeros_like). With
// loss_weight = 1 / k over k equal micro-batches the sum is the gradient of the whole batch.
void llama_train_backward(const LlamaModel& m, const LlamaActivations& act, double loss_weight,
                          LlamaModel& grads, const CancelToken* cancel = nullptr);

// The backward pass for frozen weights (recovery): no weight gradient is formed (`grads` is
// not needed), and each linear's input x [rows, in] and output gradient dy [rows, out] go to
// `linear` instead, from which adapters (or a chosen weight) take theirs at rank-sized
// cost. `layer` is −1 for the head.
using LinearGradFn = std::function<void(int64_t layer, LlamaLinear which, const float* x,
                                        const float* dy, int64_t rows)>;
void llama_frozen_backward(const LlamaModel& m, const LlamaActivations& act, double loss_weight,
                           const LinearGradFn& linear, const CancelToken* cancel = nullptr);

// The pieces of the above for code that runs the model block by block (recovery at real
// size, which keeps only each block's input and recomputes the block in the backward).
// split_training_windows: the inputs and targets of B windows of T + 1 tokens, with the
// checks llama_train_forward makes (mcw::Error for a bad batch, a token outside the
// vocabulary or a model the backward cannot train).
void split_training_windows(const LlamaModel& m, std::span<const int32_t> windows, int64_t B,
                            int64_t T, std::vector<int32_t>& inputs, std::vector<int32_t>& targets);
// One block's forward over x [B·T, D] (its input, which becomes its output), with f32
// weights; A gets what the block's backward needs. inv_freq: rope_inv_freq(c).
void llama_block_forward(const LlamaConfig& c, const LlamaLayer& L, int64_t B, int64_t T,
                         const float* inv_freq, std::vector<float>& x, LayerActivations& A);
// One block's frozen backward: dx [B·T, D], the gradient w.r.t. the block's output, becomes
// that w.r.t. its input; each linear's x and dy go to `linear` (as block `layer`).
struct BlockGradients {  // scratch, reused across blocks
  std::vector<float> dact, dgate, dup, datt, dq, dk, dv, dxn;
};
void llama_block_frozen_backward(const LlamaConfig& c, const LlamaLayer& L, int64_t layer,
                                 const LayerActivations& A, int64_t B, int64_t T,
                                 const float* inv_freq, std::vector<float>& dx,
                                 const LinearGradFn& linear, BlockGradients& scratch);
// One block's backward with its weights' gradients added into G (a layer of the block's
// shapes, f32, zeroed by the caller; biases where the block has them): block-wise
// training (block_ap.h), whose loss is the block's own output.
void llama_block_backward(const LlamaConfig& c, const LlamaLayer& L, const LayerActivations& A,
                          int64_t B, int64_t T, const float* inv_freq, std::vector<float>& dx,
                          LlamaLayer& G, BlockGradients& scratch);
// A layer of zero f32 tensors of the block's shapes (a gradient for the above).
LlamaLayer zeros_like(const LlamaConfig& c, const LlamaLayer& L);

}  // namespace mcw
