#include "engine/train/recovery.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>

#include "engine/core/error.h"
#include "engine/kernels/ops.h"
#include "engine/model/llama_tensors.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/optimizer.h"

namespace mcw {

namespace {

void check_options(const LlamaModel& m, const LlamaModel* teacher, size_t n_train, int64_t T,
                   const RecoveryOptions& o) {
  auto positive = [](int64_t v, const char* what) {
    if (v <= 0) throw Error("", std::string(what) + " must be positive, got " + std::to_string(v));
  };
  positive(o.steps, "recovery steps");
  positive(o.batch, "batch size");
  positive(T, "window length");
  if (o.eval_every < 0 || o.eval_windows < 0 || o.warmup < 0)
    throw Error("", "eval_every, eval_windows and warmup must not be negative");
  if (!(o.lr > 0) || !(o.min_lr >= 0) || o.min_lr > o.lr)
    throw Error("", "learning rates need 0 <= min_lr <= lr and lr > 0");
  if (int64_t(n_train) < T + 1)
    throw Error("", "the training text has " + std::to_string(n_train) +
                        " tokens, fewer than one window of " + std::to_string(T + 1));
  if (teacher && teacher->cfg.vocab_size != m.cfg.vocab_size)
    throw Error("", "the teacher's vocabulary (" + std::to_string(teacher->cfg.vocab_size) +
                        ") is not the compressed model's (" + std::to_string(m.cfg.vocab_size) +
                        ")");
}

Tensor* find_mut(LlamaModel& m, const std::string& name) {
  for (auto& [n, t] : m.named_tensors())
    if (n == name) return t;
  throw Error("", "the model has no weight " + name);
}

// The teacher's next-token probabilities for B windows of T + 1 tokens (inputs the first T).
void teacher_probs(const LlamaModel& teacher, std::span<const int32_t> windows, int64_t B,
                   int64_t T, std::vector<float>& out) {
  const int64_t V = teacher.cfg.vocab_size;
  out.resize(size_t(B * T * V));
  for (int64_t b = 0; b < B; ++b) {
    KVCache cache(teacher.cfg, T);
    float* p = out.data() + b * T * V;
    llama_forward(teacher, windows.subspan(size_t(b * (T + 1)), size_t(T)), cache, p);
    for (int64_t t = 0; t < T; ++t) softmax_row(p + t * V, V);
  }
}

// Evenly spaced held-out windows of T + 1 tokens, the same at every evaluation.
std::vector<int32_t> held_out_windows(std::span<const int32_t> tokens, int64_t T, int64_t count,
                                      int64_t* n_windows) {
  const int64_t n = int64_t(tokens.size());
  *n_windows = 0;
  if (n < T + 1 || count < 1) return {};
  const int64_t starts = n - T;
  count = std::min(count, starts);
  std::vector<int32_t> out;
  for (int64_t w = 0; w < count; ++w) {
    const int64_t begin = count == 1 ? 0 : w * (starts - 1) / (count - 1);
    out.insert(out.end(), tokens.begin() + begin, tokens.begin() + begin + T + 1);
  }
  *n_windows = count;
  return out;
}

}  // namespace

const std::vector<ParamSpec>& recovery_params() {
  static const RecoveryOptions d;
  static const std::vector<ParamSpec> params = {
      {"steps", "int", d.steps, {}, 1, 1e6, "optimizer steps"},
      {"rank", "int", d.rank, {}, 1, 4096, "adapter rank r"},
      {"alpha", "number", d.alpha, {}, 1e-6, 1e6, "LoRA alpha"},
      {"scaling", "string", "lora", {"lora", "rora"}, 0, 0, "lora: alpha/r; rora: alpha/sqrt(r)"},
      {"lr", "number", d.lr, {}, 1e-8, 1, "peak learning rate (warm-up, cosine to a tenth)"},
      {"batch", "int", d.batch, {}, 1, 4096, "windows per step"},
      {"window", "int", d.seq_len, {}, 2, 1e6, "tokens per window (capped to the context)"},
      {"distill", "bool", d.distill, {}, 0, 0, "KL from the uncompressed model, else next tokens"},
      {"eval_every", "int", d.eval_every, {}, 0, 1e6, "held-out evaluation every N steps"},
      {"seed", "int", int64_t(d.seed), {}, 0, 1e15, "adapter init and batch order"},
  };
  return params;
}

RecoveryOptions recovery_options(const nlohmann::json& j) {
  RecoveryOptions o;
  o.steps = j.value("steps", o.steps);
  o.rank = j.value("rank", o.rank);
  o.alpha = j.value("alpha", o.alpha);
  o.scaling = j.value("scaling", "lora") == "rora" ? LoraScaling::Rora : LoraScaling::Lora;
  o.lr = j.value("lr", o.lr);
  o.min_lr = o.lr / 10;
  o.batch = j.value("batch", o.batch);
  o.seq_len = j.value("window", o.seq_len);
  o.distill = j.value("distill", o.distill);
  o.eval_every = j.value("eval_every", o.eval_every);
  o.seed = j.value("seed", o.seed);
  return o;
}

std::vector<std::string> block_linear_names(const LlamaModel& model) {
  std::vector<std::string> out;
  for (int64_t l = 0; l < model.cfg.n_layers; ++l)
    for (const BlockTensor& t : llama_block_tensors())
      if (t.linear() && t.present(model.cfg)) out.push_back(block_tensor_name(l, t));
  return out;
}

uint64_t recovery_memory_bytes(const LlamaModel& model, const RecoveryOptions& opt) {
  const LlamaConfig& c = model.cfg;
  const double params = double(model.parameter_count());
  const double T = double(std::min(opt.seq_len, c.max_seq_len)), N = double(opt.batch) * T;
  // Per layer: the residual stream and norms (~6·D), q/k/v/att (~2Q + 2KV), the MLP (~4H)
  // per row, plus the softmax of every head; then the logits' probabilities (three
  // copies: the model's, the teacher's, their gradient).
  const double per_row =
      6.0 * double(c.dim) + 2.0 * double(c.q_dim() + c.kv_dim()) + 4.0 * double(c.hidden_dim);
  const double acts =
      double(c.n_layers) * (N * per_row + double(opt.batch) * double(c.n_heads) * T * T) +
      3.0 * N * double(c.vocab_size);
  // Adapters with their gradient and two AdamW moments: 4 × r·(in + out) per linear, at
  // most the linears' own size.
  const double adapters = 4.0 * double(opt.rank) * 2.0 * double(c.dim) * 7.0 * double(c.n_layers);
  return uint64_t(4.0 * (3.0 * params + acts + adapters));
}

RecoveryResult recover_lora(const LlamaModel& compressed, const LlamaModel* teacher,
                            const std::vector<std::string>& targets,
                            std::span<const int32_t> train_tokens,
                            std::span<const int32_t> eval_tokens, const RecoveryOptions& o,
                            const ProgressFn& progress, const CancelToken* cancel,
                            const RecoveryStepFn& on_step) {
  const int64_t T = std::min(o.seq_len, compressed.cfg.max_seq_len), B = o.batch;
  const int64_t V = compressed.cfg.vocab_size;
  check_options(compressed, teacher, train_tokens.size(), T, o);
  if (targets.empty()) throw Error("", "recovery needs at least one linear to adapt");
  const bool distill = o.distill && teacher;

  RecoveryResult r;
  r.merged = clone_model(compressed);
  r.adapters = init_lora(r.merged, targets, o.rank, o.alpha, o.scaling, o.seed);
  const double s = r.adapters.scale();
  // The frozen weights, apart from the student whose targeted weights are W + s·B·A.
  std::vector<Tensor> frozen;
  std::vector<Tensor*> merged;
  for (const LoraAdapter& a : r.adapters.adapters) {
    merged.push_back(find_mut(r.merged, a.name));
    frozen.push_back(merged.back()->f32_copy());
  }
  LlamaModel grads = zeros_like(r.merged);
  std::vector<Tensor*> dmerged;
  for (const LoraAdapter& a : r.adapters.adapters) dmerged.push_back(find_mut(grads, a.name));
  std::vector<Tensor> da, db;
  std::vector<ParamRef> params;
  for (LoraAdapter& a : r.adapters.adapters) {
    da.push_back(Tensor::zeros(DType::F32, a.a.shape()));
    db.push_back(Tensor::zeros(DType::F32, a.b.shape()));
  }
  for (size_t i = 0; i < da.size(); ++i) {
    LoraAdapter& a = r.adapters.adapters[i];
    params.push_back({{a.a.mutable_as<float>(), size_t(a.a.numel())},
                      {da[i].as<float>(), size_t(da[i].numel())},
                      true});
    params.push_back({{a.b.mutable_as<float>(), size_t(a.b.numel())},
                      {db[i].as<float>(), size_t(db[i].numel())},
                      true});
  }
  AdamW adam({.weight_decay = o.weight_decay});
  const LrSchedule sched{o.lr, o.min_lr, o.warmup, o.steps};

  // Held-out windows, with the teacher's probabilities computed once.
  int64_t n_eval = 0;
  const std::vector<int32_t> held_out = held_out_windows(eval_tokens, T, o.eval_windows, &n_eval);
  std::vector<float> held_out_teacher;
  if (teacher && n_eval) teacher_probs(*teacher, held_out, n_eval, T, held_out_teacher);
  LlamaActivations act;
  auto evaluate = [&](RecoveryStep& st) {
    if (!n_eval) return;
    double ce = 0, kl = 0;
    for (int64_t w = 0; w < n_eval; ++w) {
      const auto window =
          std::span<const int32_t>(held_out).subspan(size_t(w * (T + 1)), size_t(T + 1));
      ce += llama_train_forward(r.merged, window, 1, T, act, cancel);
      if (teacher) {
        const float* q = held_out_teacher.data() + w * T * V;
        // act.probs holds the model's probabilities; KL = Σ q (log q − log p).
        double sum = 0;
        for (int64_t i = 0; i < T * V; ++i)
          if (q[i] > 0)
            sum += double(q[i]) * (std::log(double(q[i])) -
                                   std::log(std::max(double(act.probs[size_t(i)]), 1e-30)));
        kl += sum / double(T);
      }
    }
    st.eval_loss = ce / double(n_eval);
    if (teacher) st.eval_kl = kl / double(n_eval);
  };
  auto emit = [&](RecoveryStep st) {
    r.history.push_back(st);
    if (on_step) on_step(st);
  };
  RecoveryStep start;
  start.total = o.steps;
  evaluate(start);
  emit(start);

  std::mt19937_64 sampler(o.seed ^ 0x9E3779B97F4A7C15ull);
  const uint64_t n_starts = uint64_t(int64_t(train_tokens.size()) - T);
  std::vector<int32_t> windows(size_t(B * (T + 1)));
  std::vector<float> soft;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < o.steps; ++step) {
    for (int64_t b = 0; b < B; ++b) {
      const size_t begin = size_t(sampler() % n_starts);
      std::copy(train_tokens.begin() + ptrdiff_t(begin),
                train_tokens.begin() + ptrdiff_t(begin + size_t(T) + 1),
                windows.begin() + b * (T + 1));
    }
    RecoveryStep st;
    st.step = step + 1, st.total = o.steps;
    if (distill) teacher_probs(*teacher, windows, B, T, soft);
    fill_zero(grads);
    st.loss =
        llama_train_forward(r.merged, windows, B, T, act, cancel, distill ? soft.data() : nullptr);
    llama_train_backward(r.merged, act, 1.0, grads, cancel);
    double norm2 = 0;
    for (size_t i = 0; i < da.size(); ++i) {
      std::fill(da[i].mutable_as<float>(), da[i].mutable_as<float>() + da[i].numel(), 0.0f);
      std::fill(db[i].mutable_as<float>(), db[i].mutable_as<float>() + db[i].numel(), 0.0f);
      lora_gradients(r.adapters.adapters[i], s, *dmerged[i], da[i], db[i]);
      for (const Tensor* g : {&da[i], &db[i]})
        for (int64_t j = 0; j < g->numel(); ++j)
          norm2 += double(g->as<float>()[j]) * g->as<float>()[j];
    }
    st.grad_norm = std::sqrt(norm2);
    if (o.clip > 0 && st.grad_norm > o.clip) {
      const float k = float(o.clip / st.grad_norm);
      for (std::vector<Tensor>* gs : {&da, &db})
        for (Tensor& g : *gs)
          for (int64_t j = 0; j < g.numel(); ++j) g.mutable_as<float>()[j] *= k;
    }
    st.lr = lr_at(sched, step);
    adam.step(params, st.lr);
    for (size_t i = 0; i < merged.size(); ++i)
      merge_lora(frozen[i], r.adapters.adapters[i], s, *merged[i]);
    if ((o.eval_every > 0 && st.step % o.eval_every == 0) || st.step == o.steps) evaluate(st);
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress) {
      char msg[200];
      std::snprintf(msg, sizeof msg, "step %lld/%lld %s %.4f", (long long)st.step,
                    (long long)st.total, distill ? "kl" : "loss", st.loss);
      report(progress, "recover", "", double(st.step) / double(st.total), msg);
    }
    emit(st);
    if (cancel) cancel->throw_if_cancelled();
  }
  return r;
}

}  // namespace mcw
