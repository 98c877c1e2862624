#include "engine/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "engine/core/cancellable.h"
#include "engine/core/error.h"
#include "engine/train/llama_backprop.h"

namespace mcw {

namespace {

void fill_normal(Tensor& t, std::mt19937_64& rng, double std) {
  std::normal_distribution<double> d(0.0, std);
  float* p = t.mutable_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(d(rng));
}

void fill_ones(Tensor& t) {
  float* p = t.mutable_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = 1.0f;
}

void check_options(const LlamaConfig& cfg, size_t n_train, const TrainOptions& o) {
  cfg.validate("");
  auto positive = [](int64_t v, const char* what) {
    if (v <= 0) throw Error("", std::string(what) + " must be positive, got " + std::to_string(v));
  };
  positive(o.steps, "training steps");
  positive(o.batch, "batch size");
  positive(o.micro_batches, "micro-batch count");
  positive(o.seq_len, "sequence length");
  if (o.batch % o.micro_batches)
    throw Error("", "batch size " + std::to_string(o.batch) + " is not a multiple of the " +
                        std::to_string(o.micro_batches) + " micro-batches");
  if (o.eval_every < 0 || o.eval_windows < 0 || o.warmup < 0)
    throw Error("", "eval_every, eval_windows and warmup must not be negative");
  if (!(o.lr > 0) || !(o.min_lr >= 0) || o.min_lr > o.lr)
    throw Error("", "learning rates need 0 <= min_lr <= lr and lr > 0");
  if (int64_t(n_train) < o.seq_len + 1)
    throw Error("", "the training text has " + std::to_string(n_train) +
                        " tokens, fewer than one window of " + std::to_string(o.seq_len + 1));
}

}  // namespace

LlamaModel init_llama(const LlamaConfig& c, uint64_t seed, double init_std) {
  std::mt19937_64 rng(seed);
  LlamaModel m;
  m.cfg = c;
  const double residual_std = init_std / std::sqrt(2.0 * double(c.n_layers));
  auto matrix = [&](int64_t rows, int64_t cols, double std) {
    Tensor t = Tensor::zeros(DType::F32, {rows, cols});
    fill_normal(t, rng, std);
    return t;
  };
  auto ones = [&](int64_t n) {
    Tensor t = Tensor::zeros(DType::F32, {n});
    fill_ones(t);
    return t;
  };
  m.tok_embd = matrix(c.vocab_size, c.dim, init_std);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LlamaLayer L;
    L.attn_norm = ones(c.dim);
    L.wq = matrix(c.q_dim(), c.dim, init_std);
    L.wk = matrix(c.kv_dim(), c.dim, init_std);
    L.wv = matrix(c.kv_dim(), c.dim, init_std);
    L.wo = matrix(c.dim, c.q_dim(), residual_std);
    if (c.qkv_bias) {
      L.bq = Tensor::zeros(DType::F32, {c.q_dim()});
      L.bk = Tensor::zeros(DType::F32, {c.kv_dim()});
      L.bv = Tensor::zeros(DType::F32, {c.kv_dim()});
    }
    L.ffn_norm = ones(c.dim);
    L.w_gate = matrix(c.hidden_dim, c.dim, init_std);
    L.w_up = matrix(c.hidden_dim, c.dim, init_std);
    L.w_down = matrix(c.dim, c.hidden_dim, residual_std);
    m.layers.push_back(std::move(L));
  }
  m.out_norm = ones(c.dim);
  if (!c.tie_embeddings) m.output = matrix(c.vocab_size, c.dim, init_std);
  for (auto& [name, t] : m.named_tensors()) t->set_name(name);
  return m;
}

double eval_loss(const LlamaModel& m, std::span<const int32_t> tokens, int64_t seq_len,
                 int64_t max_windows, const CancelToken* cancel) {
  const int64_t n = int64_t(tokens.size());
  const int64_t T = std::min(seq_len, n - 1);
  if (T < 1 || max_windows < 1) return std::nan("");
  const int64_t starts = n - T;  // possible window starts 0 .. n - T - 1
  const int64_t count = std::min(max_windows, starts);
  LlamaActivations act;
  double sum = 0;
  for (int64_t w = 0; w < count; ++w) {  // one window at a time keeps the activations small
    const int64_t begin = count == 1 ? 0 : w * (starts - 1) / (count - 1);
    sum += llama_train_forward(m, tokens.subspan(size_t(begin), size_t(T + 1)), 1, T, act, cancel);
  }
  return sum / double(count);
}

void random_windows(std::span<const int32_t> tokens, int64_t B, int64_t T, std::mt19937_64& sampler,
                    std::vector<int32_t>& out) {
  const uint64_t n_starts = uint64_t(int64_t(tokens.size()) - T);
  out.resize(size_t(B * (T + 1)));
  for (int64_t b = 0; b < B; ++b) {
    const size_t start = size_t(sampler() % n_starts);
    std::copy(tokens.begin() + ptrdiff_t(start), tokens.begin() + ptrdiff_t(start + size_t(T) + 1),
              out.begin() + b * (T + 1));
  }
}

double accumulate_gradients(const LlamaModel& m, std::span<const int32_t> windows, int64_t B,
                            int64_t T, int64_t micro_batches, LlamaModel& grads,
                            const CancelToken* cancel, LlamaActivations* workspace) {
  if (micro_batches <= 0 || B % micro_batches)
    throw Error("", "batch of " + std::to_string(B) + " does not split into " +
                        std::to_string(micro_batches) + " equal micro-batches");
  fill_zero(grads);
  const int64_t mb = B / micro_batches;
  const size_t span = size_t(mb * (T + 1));
  LlamaActivations local;
  LlamaActivations& act = workspace ? *workspace : local;
  double loss = 0;
  for (int64_t i = 0; i < micro_batches; ++i) {
    loss += llama_train_forward(m, windows.subspan(size_t(i) * span, span), mb, T, act, cancel);
    llama_train_backward(m, act, 1.0 / double(micro_batches), grads, cancel);
  }
  return loss / double(micro_batches);
}

TrainResult train_llama(const LlamaConfig& cfg, std::span<const int32_t> train_tokens,
                        std::span<const int32_t> eval_tokens, const TrainOptions& o,
                        const ProgressFn& progress, const CancelToken* cancel,
                        const TrainStepFn& on_step) {
  check_options(cfg, train_tokens.size(), o);
  TrainResult r;
  r.model = init_llama(cfg, o.seed, o.init_std);
  LlamaModel grads = zeros_like(r.model);
  const std::vector<ParamRef> params = llama_params(r.model, grads);
  AdamW adam(o.adamw);
  const LrSchedule sched{o.lr, o.min_lr, o.warmup, o.steps};
  std::mt19937_64 sampler(o.seed ^ 0x9E3779B97F4A7C15ull);  // independent of the init stream

  const int64_t T = o.seq_len, B = o.batch;
  std::vector<int32_t> windows(size_t(B * (T + 1)));
  LlamaActivations workspace;
  const auto t0 = std::chrono::steady_clock::now();
  double eval_seconds = 0;
  for (int64_t step = 0; step < o.steps; ++step) {
    random_windows(train_tokens, B, T, sampler, windows);
    TrainStep s;
    s.step = step + 1, s.total = o.steps;
    // The gradients are numbers only (the model changes in the optimizer step after), so a
    // cancel stops them inside rather than at the next layer.
    run_cancellable(cancel, [&] {
      s.loss = accumulate_gradients(r.model, windows, B, T, o.micro_batches, grads, cancel,
                                    &workspace);
    });
    s.grad_norm = o.clip > 0 ? clip_grad_norm(grads, o.clip) : global_grad_norm(grads);
    s.lr = lr_at(sched, step);
    adam.step(params, s.lr);
    if ((o.eval_every > 0 && s.step % o.eval_every == 0) || s.step == o.steps)
      if (!eval_tokens.empty()) {
        const auto e0 = std::chrono::steady_clock::now();
        double e = 0;
        run_cancellable(cancel,
                        [&] { e = eval_loss(r.model, eval_tokens, T, o.eval_windows, cancel); });
        if (!std::isnan(e)) s.eval_loss = e;
        eval_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
      }
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double train_seconds = s.seconds - eval_seconds;  // throughput of training alone
    s.tokens_per_second = train_seconds > 0 ? double(s.step * B * T) / train_seconds : 0;
    r.history.push_back(s);
    if (on_step) on_step(s);
    if (progress) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "step %lld/%lld loss %.4f lr %.3g %.0f tok/s",
                    (long long)s.step, (long long)s.total, s.loss, s.lr, s.tokens_per_second);
      report(progress, "train", "", double(s.step) / double(s.total), msg);
    }
    if (cancel) cancel->throw_if_cancelled();
  }
  return r;
}

}  // namespace mcw
