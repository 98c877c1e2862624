// Forward pieces that keep what their backward needs, and the backward of every op of the
// llama block. Row-major f32. A batch is B sequences of T positions, N = B·T rows.
// Backward functions ADD into the gradients of inputs and weights (so contributions from
// several uses, or several micro-batches, simply accumulate); callers zero them first.
// Every reduction runs over fixed chunks summed in a fixed order, so results do not depend
// on the number of threads.
#pragma once
#include <cstdint>
#include <span>

namespace mcw {

// Forward: y = x · inv_rms · w, inv_rms[r] = 1 / sqrt(mean(x[r]²) + eps).
void rmsnorm_forward(const float* x, const float* w, float* y, float* inv_rms, int64_t rows,
                     int64_t dim, double eps);
void rmsnorm_backward(const float* x, const float* w, const float* inv_rms, const float* dy,
                      float* dx, float* dw, int64_t rows, int64_t dim);  // dw may be null

// Rotates every row of [B·T, n_heads·head_dim] for the position t of its row; the inverse
// rotation (its transpose) maps a gradient w.r.t. the rotated values back.
void rope_rows(float* x, int64_t B, int64_t T, int64_t n_heads, int64_t head_dim,
               const float* inv_freq, bool inverse);

// Causal grouped-query attention per sequence. q [N, Hq·hd], k/v [N, Hkv·hd],
// probs [B, Hq, T, T] (rows of the causal softmax, zero above the diagonal), out [N, Hq·hd].
struct AttentionShape {
  int64_t B, T, n_heads, n_kv_heads, head_dim;
};
void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       float* probs, float* out);
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* probs, const float* dout, float* dq, float* dk, float* dv);

// a = silu(g) · u, elementwise.
void swiglu_forward(const float* g, const float* u, float* a, int64_t n);
void swiglu_backward(const float* g, const float* u, const float* da, float* dg, float* du,
                     int64_t n);

// x[r] = table[tokens[r]]; the backward scatters dx rows back onto the table rows.
void embedding_forward(const float* table, std::span<const int32_t> tokens, float* x, int64_t dim);
void embedding_backward(std::span<const int32_t> tokens, const float* dx, float* dtable,
                        int64_t dim);

// Linear layer y = x · Wᵀ (+ b), W [out, in]: dx += dy · W, dW += dyᵀ · x, db += Σ_rows dy.
// dx, dw, db may be null.
void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, int64_t rows, int64_t out, int64_t in);

// Turns logits [rows, V] into softmax probabilities in place; returns Σ_r -log p[r][target].
double cross_entropy_forward(float* logits_to_probs, std::span<const int32_t> targets, int64_t V);
// dlogits = scale · (probs - onehot(target)): the gradient of scale · Σ_r nll_r.
void cross_entropy_backward(const float* probs, std::span<const int32_t> targets, int64_t V,
                            double scale, float* dlogits);

// Distillation: turns logits [rows, V] into softmax probabilities p in place, as
// cross_entropy_forward does, and returns Σ_r KL(q_r ‖ p_r) for the teacher's
// probabilities q [rows, V] (0·log 0 = 0).
double kl_divergence_forward(float* logits_to_probs, const float* teacher_probs, int64_t rows,
                             int64_t V);
// The mean −log p[r][target r] over `rows` rows of probabilities [rows, V] (what the two
// forwards above leave): the next tokens' NLL measured beside a KL.
double mean_nll(const float* probs, const int32_t* targets, int64_t rows, int64_t V);
// dlogits = scale · (p - q): the gradient of scale · Σ_r KL(q_r ‖ p_r).
void kl_divergence_backward(const float* probs, const float* teacher_probs, int64_t rows,
                            int64_t V, double scale, float* dlogits);

// out[c] += Σ_r m[r][c], summed per fixed row chunk, chunks in order.
void column_sums(const float* m, int64_t rows, int64_t cols, float* out);

}  // namespace mcw
