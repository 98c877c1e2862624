#include "engine/train/llama_backprop.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "engine/core/error.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/ops.h"
#include "engine/model/llama_tensors.h"
#include "engine/train/train_ops.h"

namespace mcw {

namespace {

void zero(std::vector<float>& v) { std::fill(v.begin(), v.end(), 0.0f); }
// Every activation buffer is overwritten in full, so reuse across steps needs no clearing.
void resize(std::vector<float>& v, int64_t n) { v.resize(size_t(n)); }
const float* bias_of(const Tensor& b) { return b.empty() ? nullptr : b.as<float>(); }
float* bias_grad(Tensor& b) { return b.empty() ? nullptr : b.mutable_as<float>(); }
void check_cancel(const CancelToken* c) {
  if (c) c->throw_if_cancelled();
}

}  // namespace

void require_trainable(const LlamaConfig& c) {
  if (!c.llama_block())
    throw Error("",
                "training (recovery, QAT, Block-AP) covers llama's block (RMSNorm, rotary "
                "positions, a gated MLP); a " +
                    c.model_type + " block is not supported");
  if (!c.uniform())
    throw Error("",
                "training covers models whose blocks have one width; this one's blocks were "
                "pruned to widths of their own (FLAP's global allocation)");
}

LlamaModel zeros_like(const LlamaModel& m) {
  LlamaModel g = m;  // config and layer count; every tensor is replaced below
  auto src = m.named_tensors();
  auto dst = g.named_tensors();
  for (size_t i = 0; i < dst.size(); ++i)
    *dst[i].second = Tensor::zeros(DType::F32, src[i].second->shape(), src[i].first);
  return g;
}

LlamaLayer zeros_like(const LlamaConfig& c, const LlamaLayer& L) {
  LlamaLayer g = L;
  for (const BlockTensor& t : llama_block_tensors())
    if (t.present(c)) g.*t.member = Tensor::zeros(DType::F32, (L.*t.member).shape());
  return g;
}

LlamaModel clone_model(const LlamaModel& m) {
  LlamaModel c = m;  // config and layer count; every tensor is replaced below
  // Each decodes straight into its copy (f32_copy: no f32 temporary the size of the
  // largest, a 2 GB embedding at Llama-3's vocabulary).
  for (auto& [name, t] : c.named_tensors()) {
    Tensor copy = t->f32_copy();
    copy.set_name(name);
    *t = std::move(copy);
  }
  return c;
}

void fill_zero(LlamaModel& grads) {
  for (auto& [name, t] : grads.named_tensors()) std::memset(t->mutable_data(), 0, t->nbytes());
}

void split_training_windows(const LlamaModel& m, std::span<const int32_t> windows, int64_t B,
                            int64_t T, std::vector<int32_t>& inputs,
                            std::vector<int32_t>& targets) {
  const LlamaConfig& c = m.cfg;
  const int64_t N = B * T, V = c.vocab_size;
  if (B <= 0 || T <= 0 || int64_t(windows.size()) != B * (T + 1))
    throw Error("", "training batch of " + std::to_string(windows.size()) +
                        " tokens does not hold " + std::to_string(B) + " windows of " +
                        std::to_string(T + 1));
  // The backward pass knows no o_proj/down_proj biases (structured pruning) and no int8
  // activations (W8A8): refuse rather than train the wrong function.
  if (c.o_bias || c.down_bias)
    throw Error("",
                "training does not support o_proj/down_proj biases (a structurally pruned model)");
  if (c.long_rope.enabled()) throw Error("", "training does not support LongRoPE (Phi-3)");
  for (const LlamaLayer& L : m.layers)
    if (L.act_int8) throw Error("", "training does not support int8 activations (a W8A8 model)");
  if (c.sliding_window > 0 && c.sliding_window < T)
    throw Error("", "training windows of " + std::to_string(T) + " tokens exceed the model's " +
                        std::to_string(c.sliding_window) +
                        "-token attention window, which training does not apply");
  inputs.resize(size_t(N));
  targets.resize(size_t(N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t <= T; ++t) {
      const int32_t id = windows[size_t(b * (T + 1) + t)];
      if (id < 0 || id >= V)
        throw Error("", "token id " + std::to_string(id) + " is outside the vocabulary (" +
                            std::to_string(V) + ")");
      if (t < T) inputs[size_t(b * T + t)] = id;
      if (t > 0) targets[size_t(b * T + t - 1)] = id;
    }
}

void llama_block_forward(const LlamaConfig& c, const LlamaLayer& L, int64_t B, int64_t T,
                         const float* inv_freq, std::vector<float>& x, LayerActivations& A) {
  const int64_t N = B * T, D = c.dim, H = c.hidden_dim, Q = c.q_dim(), KV = c.kv_dim();
  const AttentionShape shape{B, T, c.n_heads, c.n_kv_heads, c.head_dim};
  A.x_in = x;
  resize(A.inv_rms1, N), resize(A.xn1, N * D), resize(A.q, N * Q), resize(A.k, N * KV);
  resize(A.v, N * KV), resize(A.probs, B * c.n_heads * T * T), resize(A.att, N * Q);
  resize(A.inv_rms2, N), resize(A.xn2, N * D), resize(A.gate, N * H), resize(A.up, N * H);
  resize(A.act, N * H);

  rmsnorm_forward(A.x_in.data(), L.attn_norm.as<float>(), A.xn1.data(), A.inv_rms1.data(), N, D,
                  c.rms_eps);
  matmul_wt(A.xn1.data(), L.wq.as<float>(), A.q.data(), N, Q, D, bias_of(L.bq));
  matmul_wt(A.xn1.data(), L.wk.as<float>(), A.k.data(), N, KV, D, bias_of(L.bk));
  matmul_wt(A.xn1.data(), L.wv.as<float>(), A.v.data(), N, KV, D, bias_of(L.bv));
  rope_rows(A.q.data(), B, T, c.n_heads, c.head_dim, inv_freq, false);
  rope_rows(A.k.data(), B, T, c.n_kv_heads, c.head_dim, inv_freq, false);
  attention_forward(shape, A.q.data(), A.k.data(), A.v.data(), A.probs.data(), A.att.data());
  matmul_wt(A.att.data(), L.wo.as<float>(), x.data(), N, D, Q, nullptr, /*accumulate=*/true);
  A.x_mid = x;

  rmsnorm_forward(A.x_mid.data(), L.ffn_norm.as<float>(), A.xn2.data(), A.inv_rms2.data(), N, D,
                  c.rms_eps);
  matmul_wt(A.xn2.data(), L.w_gate.as<float>(), A.gate.data(), N, H, D);
  matmul_wt(A.xn2.data(), L.w_up.as<float>(), A.up.data(), N, H, D);
  swiglu_forward(A.gate.data(), A.up.data(), A.act.data(), N * H);
  matmul_wt(A.act.data(), L.w_down.as<float>(), x.data(), N, D, H, nullptr, /*accumulate=*/true);
}

double llama_train_forward(const LlamaModel& m, std::span<const int32_t> windows, int64_t B,
                           int64_t T, LlamaActivations& a, const CancelToken* cancel,
                           const float* teacher_probs) {
  const LlamaConfig& c = m.cfg;
  const int64_t N = B * T, D = c.dim, V = c.vocab_size;
  split_training_windows(m, windows, B, T, a.inputs, a.targets);
  a.B = B, a.T = T;
  const std::vector<float> inv_freq = rope_inv_freq(c);
  a.layers.resize(size_t(c.n_layers));
  std::vector<float> x(size_t(N * D));
  embedding_forward(m.tok_embd.as<float>(), a.inputs, x.data(), D);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    check_cancel(cancel);
    llama_block_forward(c, m.layers[size_t(l)], B, T, inv_freq.data(), x, a.layers[size_t(l)]);
  }
  check_cancel(cancel);
  a.x_final = std::move(x);
  resize(a.inv_rms_final, N), resize(a.xn_final, N * D), resize(a.probs, N * V);
  rmsnorm_forward(a.x_final.data(), m.out_norm.as<float>(), a.xn_final.data(),
                  a.inv_rms_final.data(), N, D, c.rms_eps);
  matmul_wt(a.xn_final.data(), m.lm_head().as<float>(), a.probs.data(), N, V, D);
  if (teacher_probs) {
    a.soft_targets.assign(teacher_probs, teacher_probs + N * V);
    a.loss = kl_divergence_forward(a.probs.data(), teacher_probs, N, V) / double(N);
  } else {
    a.soft_targets.clear();
    a.loss = cross_entropy_forward(a.probs.data(), a.targets, V) / double(N);
  }
  return a.loss;
}

namespace {

// One block's backward: dx holds the gradient w.r.t. the block's output and becomes that
// w.r.t. its input (adding the paths through each residual branch); weight gradients go
// into *G when it is set, each linear's x and dy to *linear when it is set.
void block_backward(const LlamaConfig& c, const LlamaLayer& L, int64_t l, const LayerActivations& A,
                    int64_t B, int64_t T, const float* inv_freq, std::vector<float>& dx,
                    LlamaLayer* G, const LinearGradFn* linear, BlockGradients& s) {
  const int64_t N = B * T, D = c.dim, H = c.hidden_dim, Q = c.q_dim(), KV = c.kv_dim();
  const AttentionShape shape{B, T, c.n_heads, c.n_kv_heads, c.head_dim};
  auto gw = [&](Tensor LlamaLayer::*member) { return G ? (G->*member).mutable_as<float>() : nullptr; };
  auto gb = [&](Tensor LlamaLayer::*member) { return G ? bias_grad(G->*member) : nullptr; };
  // dx += dy·W, the weight's gradient where wanted, and the hook.
  auto lin = [&](LlamaLinear which, const float* x, const Tensor& w, const float* dy, float* dxo,
                 float* dw, float* db, int64_t out, int64_t in) {
    linear_backward(x, w.as<float>(), dy, dxo, dw, db, N, out, in);
    if (linear) (*linear)(l, which, x, dy, N);
  };
  for (std::vector<float>* v : {&s.dact, &s.dgate, &s.dup}) v->assign(size_t(N * H), 0.0f);
  s.dxn.assign(size_t(N * D), 0.0f);
  lin(LlamaLinear::Down, A.act.data(), L.w_down, dx.data(), s.dact.data(), gw(&LlamaLayer::w_down),
      nullptr, D, H);
  swiglu_backward(A.gate.data(), A.up.data(), s.dact.data(), s.dgate.data(), s.dup.data(), N * H);
  lin(LlamaLinear::Gate, A.xn2.data(), L.w_gate, s.dgate.data(), s.dxn.data(),
      gw(&LlamaLayer::w_gate), nullptr, H, D);
  lin(LlamaLinear::Up, A.xn2.data(), L.w_up, s.dup.data(), s.dxn.data(), gw(&LlamaLayer::w_up),
      nullptr, H, D);
  rmsnorm_backward(A.x_mid.data(), L.ffn_norm.as<float>(), A.inv_rms2.data(), s.dxn.data(),
                   dx.data(), gw(&LlamaLayer::ffn_norm), N, D);

  s.datt.assign(size_t(N * Q), 0.0f), s.dq.assign(size_t(N * Q), 0.0f);
  s.dk.assign(size_t(N * KV), 0.0f), s.dv.assign(size_t(N * KV), 0.0f);
  zero(s.dxn);
  lin(LlamaLinear::O, A.att.data(), L.wo, dx.data(), s.datt.data(), gw(&LlamaLayer::wo), nullptr,
      D, Q);
  attention_backward(shape, A.q.data(), A.k.data(), A.v.data(), A.probs.data(), s.datt.data(),
                     s.dq.data(), s.dk.data(), s.dv.data());
  rope_rows(s.dq.data(), B, T, c.n_heads, c.head_dim, inv_freq, /*inverse=*/true);
  rope_rows(s.dk.data(), B, T, c.n_kv_heads, c.head_dim, inv_freq, /*inverse=*/true);
  lin(LlamaLinear::Q, A.xn1.data(), L.wq, s.dq.data(), s.dxn.data(), gw(&LlamaLayer::wq),
      gb(&LlamaLayer::bq), Q, D);
  lin(LlamaLinear::K, A.xn1.data(), L.wk, s.dk.data(), s.dxn.data(), gw(&LlamaLayer::wk),
      gb(&LlamaLayer::bk), KV, D);
  lin(LlamaLinear::V, A.xn1.data(), L.wv, s.dv.data(), s.dxn.data(), gw(&LlamaLayer::wv),
      gb(&LlamaLayer::bv), KV, D);
  rmsnorm_backward(A.x_in.data(), L.attn_norm.as<float>(), A.inv_rms1.data(), s.dxn.data(),
                   dx.data(), gw(&LlamaLayer::attn_norm), N, D);
}

// The backward pass: weight gradients into *g when it is set, each linear's x and dy to
// *linear when it is set.
void backward(const LlamaModel& m, const LlamaActivations& a, double loss_weight, LlamaModel* g,
              const LinearGradFn* linear, const CancelToken* cancel) {
  const LlamaConfig& c = m.cfg;
  const int64_t N = a.B * a.T, D = c.dim, V = c.vocab_size;
  const std::vector<float> inv_freq = rope_inv_freq(c);
  std::vector<float> dlogits(size_t(N * V)), dx(size_t(N * D)), dxn(size_t(N * D));
  if (a.soft_targets.empty())
    cross_entropy_backward(a.probs.data(), a.targets, V, loss_weight / double(N), dlogits.data());
  else
    kl_divergence_backward(a.probs.data(), a.soft_targets.data(), N, V, loss_weight / double(N),
                           dlogits.data());
  float* dhead = g ? (c.tie_embeddings ? g->tok_embd : g->output).mutable_as<float>() : nullptr;
  linear_backward(a.xn_final.data(), m.lm_head().as<float>(), dlogits.data(), dxn.data(), dhead,
                  nullptr, N, V, D);
  if (linear) (*linear)(-1, LlamaLinear::Head, a.xn_final.data(), dlogits.data(), N);
  rmsnorm_backward(a.x_final.data(), m.out_norm.as<float>(), a.inv_rms_final.data(), dxn.data(),
                   dx.data(), g ? g->out_norm.mutable_as<float>() : nullptr, N, D);
  BlockGradients scratch;
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    check_cancel(cancel);
    block_backward(c, m.layers[size_t(l)], l, a.layers[size_t(l)], a.B, a.T, inv_freq.data(), dx,
                   g ? &g->layers[size_t(l)] : nullptr, linear, scratch);
  }
  if (g) embedding_backward(a.inputs, dx.data(), g->tok_embd.mutable_as<float>(), D);
}

}  // namespace

void llama_block_frozen_backward(const LlamaConfig& c, const LlamaLayer& L, int64_t layer,
                                 const LayerActivations& A, int64_t B, int64_t T,
                                 const float* inv_freq, std::vector<float>& dx,
                                 const LinearGradFn& linear, BlockGradients& scratch) {
  block_backward(c, L, layer, A, B, T, inv_freq, dx, nullptr, &linear, scratch);
}

void llama_block_backward(const LlamaConfig& c, const LlamaLayer& L, const LayerActivations& A,
                          int64_t B, int64_t T, const float* inv_freq, std::vector<float>& dx,
                          LlamaLayer& G, BlockGradients& scratch) {
  block_backward(c, L, 0, A, B, T, inv_freq, dx, &G, nullptr, scratch);
}

void llama_train_backward(const LlamaModel& m, const LlamaActivations& a, double loss_weight,
                          LlamaModel& g, const CancelToken* cancel) {
  backward(m, a, loss_weight, &g, nullptr, cancel);
}

void llama_frozen_backward(const LlamaModel& m, const LlamaActivations& a, double loss_weight,
                           const LinearGradFn& linear, const CancelToken* cancel) {
  backward(m, a, loss_weight, nullptr, &linear, cancel);
}

}  // namespace mcw
