#include "engine/train/streamed_student.h"

#include <algorithm>
#include <cmath>

#include "engine/core/error.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/ops.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/model/llama_tensors.h"
#include "engine/train/train_ops.h"

namespace mcw {

namespace {

void check_cancel(const CancelToken* c) {
  if (c) c->throw_if_cancelled();
}

// The head's rows decoded to f32 this many at a time for dxn += dlogits·W (a 64 MiB tile at
// Llama-3-8B's width, where the whole head in f32 is 2 GiB).
constexpr int64_t kHeadRowsPerTile = 4096;

}  // namespace

std::map<std::string, const CompressedTensor*> packed_by_name(
    const LlamaModel& model, std::span<const CompressedTensor> packed, const std::string& source) {
  std::map<std::string, const Tensor*> weights;
  for (const auto& [n, t] : model.named_tensors()) weights[n] = t;
  std::map<std::string, const CompressedTensor*> out;
  for (const CompressedTensor& c : packed) {
    const auto it = weights.find(c.name);
    if (it == weights.end() || it->second->ndim() != 2 || it->second->dim(0) != c.rows ||
        it->second->dim(1) != c.cols)
      throw Error(source, "layer " + c.name + " is not a weight of the model's shape");
    out[c.name] = &c;
  }
  return out;
}

StreamedStudent::StreamedStudent(const LlamaModel& base, std::span<const CompressedTensor> packed,
                                 const LoraAdapters* adapters, const std::string& packed_source)
    : base_(base),
      adapters_(adapters),
      packed_(packed_by_name(base, packed, packed_source)),
      inv_freq_(rope_inv_freq(base.cfg)) {
  if (adapters)
    for (const LoraAdapter& a : adapters->adapters) adapted_[a.name] = &a;
}

LlamaLayer StreamedStudent::block(int64_t layer) const {
  LlamaLayer L = base_.layers[size_t(layer)];
  for (const BlockTensor& t : llama_block_tensors()) {
    if (!t.linear() || !t.present(base_.cfg)) continue;
    const std::string name = block_tensor_name(layer, t);
    Tensor& w = L.*t.member;
    if (const auto p = packed_.find(name); p != packed_.end()) {
      w = p->second->dequantize();
    } else if (w.dtype() != DType::F32) {
      w = w.f32_copy();
    }
    if (const auto a = adapted_.find(name); a != adapted_.end())
      w = merge_lora(w, *a->second, adapters_->scale());
  }
  return L;
}

void StreamedStudent::forward_blocks(std::vector<float>& x, int64_t B, int64_t T,
                                     std::vector<std::vector<float>>* saved,
                                     const CancelToken* cancel) {
  for (int64_t l = 0; l < base_.cfg.n_layers; ++l) {
    check_cancel(cancel);
    if (saved) (*saved)[size_t(l)] = x;
    llama_block_forward(base_.cfg, block(l), B, T, inv_freq_.data(), x, act_);
    if (block_hook_) block_hook_();
  }
}

void StreamedStudent::head_logits(const float* xn, int64_t T, float* logits) const {
  const int64_t D = base_.cfg.dim, V = base_.cfg.vocab_size;
  matmul_wt_stored(xn, D, base_.lm_head(), logits, V, T);
}

double StreamedStudent::train_step(std::span<const int32_t> windows, int64_t B, int64_t T,
                                   const float* teacher_probs, const LinearGradFn& linear,
                                   const CancelToken* cancel) {
  const LlamaConfig& c = base_.cfg;
  const int64_t N = B * T, D = c.dim, V = c.vocab_size;
  std::vector<int32_t> targets;
  std::vector<std::vector<float>> saved(size_t(c.n_layers));
  const FinalHidden h = final_hidden(windows, B, T, targets, &saved, cancel);
  check_cancel(cancel);
  const std::vector<float>& xn = h.xn;
  std::vector<float> dxn(size_t(N * D), 0.0f);

  // The head one window at a time: logits, the loss and its gradient, and dxn += dlogits·W
  // with W decoded a tile of rows at a time.
  const Tensor& head = base_.lm_head();
  const int64_t tile = std::min(kHeadRowsPerTile, V);
  std::vector<float> probs(size_t(T * V)), dlogits(size_t(T * V)), w(size_t(tile * D));
  double loss = 0;
  for (int64_t b = 0; b < B; ++b) {
    check_cancel(cancel);
    head_logits(xn.data() + b * T * D, T, probs.data());
    const std::span<const int32_t> tb =
        std::span<const int32_t>(targets).subspan(size_t(b * T), size_t(T));
    if (teacher_probs) {
      const float* tp = teacher_probs + b * T * V;
      loss += kl_divergence_forward(probs.data(), tp, T, V);
      kl_divergence_backward(probs.data(), tp, T, V, 1.0 / double(N), dlogits.data());
    } else {
      loss += cross_entropy_forward(probs.data(), tb, V);
      cross_entropy_backward(probs.data(), tb, V, 1.0 / double(N), dlogits.data());
    }
    for (int64_t v0 = 0; v0 < V; v0 += tile) {
      const int64_t rows = std::min(tile, V - v0);
      weight_rows_f32(head, v0, v0 + rows, w.data());
      matmul_strided(dlogits.data() + v0, V, w.data(), D, dxn.data() + b * T * D, D, T, D, rows,
                     /*accumulate=*/true);
    }
  }
  std::vector<float> dx(size_t(N * D), 0.0f);
  rmsnorm_backward(h.x.data(), base_.out_norm.as<float>(), h.inv_rms.data(), dxn.data(), dx.data(),
                   nullptr, N, D);
  // Each block again from its saved input (recomputed, not kept), then its backward.
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    check_cancel(cancel);
    const LlamaLayer L = block(l);
    llama_block_forward(c, L, B, T, inv_freq_.data(), saved[size_t(l)], act_);
    std::vector<float>().swap(saved[size_t(l)]);
    llama_block_frozen_backward(c, L, l, act_, B, T, inv_freq_.data(), dx, linear, scratch_);
    if (block_hook_) block_hook_();
  }
  return loss / double(N);
}

StreamedStudent::FinalHidden StreamedStudent::final_hidden(std::span<const int32_t> windows,
                                                           int64_t B, int64_t T,
                                                           std::vector<int32_t>& targets,
                                                           std::vector<std::vector<float>>* saved,
                                                           const CancelToken* cancel) {
  const LlamaConfig& c = base_.cfg;
  const int64_t N = B * T, D = c.dim;
  std::vector<int32_t> inputs;
  split_training_windows(base_, windows, B, T, inputs, targets);
  FinalHidden h{std::vector<float>(size_t(N * D)), std::vector<float>(size_t(N * D)),
                std::vector<float>(static_cast<size_t>(N))};
  llama_embed(base_, inputs, h.x.data());
  forward_blocks(h.x, B, T, saved, cancel);
  rmsnorm_forward(h.x.data(), base_.out_norm.as<float>(), h.xn.data(), h.inv_rms.data(), N, D,
                  c.rms_eps);
  return h;
}

void StreamedStudent::for_each_window(std::span<const int32_t> windows, int64_t n, int64_t T,
                                      int64_t group, const CancelToken* cancel,
                                      const WindowFn& fn) {
  const int64_t D = base_.cfg.dim;
  group = std::max<int64_t>(1, group);
  std::vector<int32_t> targets;
  for (int64_t w0 = 0; w0 < n; w0 += group) {
    const int64_t B = std::min(group, n - w0);
    const FinalHidden h = final_hidden(windows.subspan(size_t(w0 * (T + 1)), size_t(B * (T + 1))),
                                       B, T, targets, nullptr, cancel);
    for (int64_t b = 0; b < B; ++b) fn(w0 + b, h.xn.data() + b * T * D, targets.data() + b * T);
  }
}

void StreamedStudent::probabilities(std::span<const int32_t> windows, int64_t n, int64_t T,
                                    int64_t group, float* out, const CancelToken* cancel) {
  const int64_t V = base_.cfg.vocab_size;
  for_each_window(windows, n, T, group, cancel, [&](int64_t w, const float* xn, const int32_t*) {
    float* p = out + w * T * V;
    head_logits(xn, T, p);
    for (int64_t t = 0; t < T; ++t) softmax_row(p + t * V, V);
  });
  act_ = {};  // a teacher's block activations are not needed until its next batch
}

void StreamedStudent::evaluate(std::span<const int32_t> windows, int64_t n, int64_t T,
                               int64_t group, const float* teacher_probs, double* ce, double* kl,
                               const CancelToken* cancel) {
  const int64_t V = base_.cfg.vocab_size;
  std::vector<float> probs(size_t(T * V));
  for_each_window(windows, n, T, group, cancel, [&](int64_t w, const float* xn, const int32_t* tb) {
    head_logits(xn, T, probs.data());
    if (!teacher_probs) {
      *ce += cross_entropy_forward(probs.data(), {tb, size_t(T)}, V) / double(T);
      return;
    }
    *kl += kl_divergence_forward(probs.data(), teacher_probs + w * T * V, T, V) / double(T);
    *ce += mean_nll(probs.data(), tb, T, V);  // from the probabilities the KL's forward leaves
  });
}

}  // namespace mcw
