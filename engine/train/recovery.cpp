#include "engine/train/recovery.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "engine/core/cancellable.h"
#include "engine/core/error.h"
#include "engine/kernels/gemm.h"
#include "engine/kernels/ops.h"
#include "engine/model/llama_tensors.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/lora_merge.h"
#include "engine/train/optimizer.h"
#include "engine/train/qat.h"
#include "engine/train/streamed_student.h"
#include "engine/train/train_ops.h"
#include "engine/train/trainer.h"

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

const std::vector<ParamSpec>& recovery_params(std::string_view method) {
  static const RecoveryOptions d;
  static const BlockApOptions b;
  auto method_spec = [](const char* fallback) {
    return ParamSpec{"method",
                     "string",
                     fallback,
                     {"lora", "qat", "block-ap"},
                     0,
                     0,
                     "lora: adapters; qat: quantisation-aware training; block-ap: QAT block by "
                     "block at any size (EfficientQAT's Block-AP)"};
  };
  static const std::vector<ParamSpec> block_ap_params = {
      method_spec("block-ap"),
      {"epochs", "int", b.epochs, {}, 0, 1000, "passes over the training windows per block"},
      {"train_windows", "int", b.train_windows, {}, 1, 1e6, "calibration windows trained on"},
      {"val_windows", "int", b.val_windows, {}, 0, 1e6, "windows of the validation MSE"},
      {"window", "int", b.seq_len, {}, 2, 1e6, "tokens per window (capped to the context)"},
      {"batch", "int", b.batch, {}, 1, 4096, "windows per step"},
      {"quant_lr", "number", b.quant_lr, {}, 0, 1, "learning rate of scales and zero points"},
      {"weight_lr", "number", b.weight_lr, {}, -1, 1,
       "learning rate of weights and norms; -1: 2e-5 at 2 bits, 1e-5 above"},
      {"seed", "int", int64_t(b.seed), {}, 0, 1e15, "calibration windows"},
  };
  if (method == "block-ap") return block_ap_params;
  static const std::vector<ParamSpec> params = {
      method_spec("lora"),
      {"steps", "int", d.steps, {}, 1, 1e6, "optimizer steps"},
      {"rank", "int", d.rank, {}, 1, 4096, "adapter rank r"},
      {"alpha", "number", d.alpha, {}, 1e-6, 1e6, "LoRA alpha"},
      {"scaling", "string", "lora", {"lora", "rora"}, 0, 0, "lora: alpha/r; rora: alpha/sqrt(r)"},
      {"lr", "number", d.lr, {}, 1e-8, 1, "peak learning rate (warm-up, cosine to a tenth)"},
      {"batch", "int", d.batch, {}, 1, 4096, "windows per step"},
      {"window", "int", d.seq_len, {}, 2, 1e6, "tokens per window (capped to the context)"},
      {"distill", "bool", d.distill, {}, 0, 0, "KL from the uncompressed model, else next tokens"},
      {"eval_every", "int", d.eval_every, {}, 0, 1e6, "held-out evaluation every N steps"},
      {"eval_windows", "int", d.eval_windows, {}, 1, 1e6, "held-out windows per evaluation"},
      {"seed", "int", int64_t(d.seed), {}, 0, 1e15, "adapter init and batch order"},
      {"learn_zeros", "bool", d.learn_zeros, {}, 0, 0, "qat: learn zero points too (LSQ+)"},
  };
  return params;
}

RecoveryOptions recovery_options(const nlohmann::json& j) {
  RecoveryOptions o;
  if (j.value("method", "lora") == "block-ap") {
    BlockApOptions& b = o.block_ap;
    o.method = RecoveryOptions::Method::BlockAp;
    b.epochs = j.value("epochs", b.epochs);
    b.train_windows = j.value("train_windows", b.train_windows);
    b.val_windows = j.value("val_windows", b.val_windows);
    b.seq_len = j.value("window", b.seq_len);
    b.batch = j.value("batch", b.batch);
    b.quant_lr = j.value("quant_lr", b.quant_lr);
    b.weight_lr = j.value("weight_lr", b.weight_lr);
    b.seed = j.value("seed", b.seed);
    return o;
  }
  o.method = j.value("method", "lora") == "qat" ? RecoveryOptions::Method::Qat
                                                : RecoveryOptions::Method::Lora;
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
  o.eval_windows = j.value("eval_windows", o.eval_windows);
  o.seed = j.value("seed", o.seed);
  o.learn_zeros = j.value("learn_zeros", o.learn_zeros);
  return o;
}

std::vector<std::string> block_linear_names(const LlamaModel& model) {
  std::vector<std::string> out;
  for (int64_t l = 0; l < model.cfg.n_layers; ++l)
    for (const BlockTensor& t : llama_block_tensors())
      if (t.linear() && t.present(model.cfg)) out.push_back(block_tensor_name(l, t));
  return out;
}

RecoveryCost recovery_cost(const ModelShape& m, const RecoveryOptions& o) {
  if (o.method == RecoveryOptions::Method::BlockAp) {
    BlockApOptions b = o.block_ap;
    if (m.context > 0) b.seq_len = std::min(b.seq_len, m.context);
    const BlockApCost c = block_ap_cost(m, b);
    return {c.bytes, c.flops};
  }
  const double P = double(m.parameters()), L = double(std::max<int64_t>(m.n_layers, 1));
  const double T = double(std::min(o.seq_len, m.context > 0 ? m.context : o.seq_len)),
               N = double(o.batch) * T, D = double(m.dim), V = double(m.vocab);
  // Per layer and row: the residual stream and norms (~6·D), q/k/v/attention (~2Q + 2KV),
  // the MLP (~4H), plus every head's softmax.
  const double per_row =
      6.0 * D + 2.0 * double(m.q_dim + m.kv_dim) + 4.0 * double(m.hidden_dim);
  const double block_acts = N * per_row + double(o.batch) * double(m.n_heads) * T * T;
  double linear_params = 0, trainable = 0;
  for (const LinearShape& l : m.linears) {
    linear_params += double(l.rows * l.cols);
    // Trainables with their gradient and two AdamW moments: LoRA's r·(in + out) per
    // linear, or QAT's latent weights (the linears whole).
    trainable += o.method == RecoveryOptions::Method::Qat
                     ? double(l.rows * l.cols)
                     : double(o.rank) * double(l.rows + l.cols);
  }
  double words = 4.0 * trainable;
  if (o.method == RecoveryOptions::Method::Qat) {
    // The f32 student and its frozen copy, every layer's activations, and the logits'
    // probabilities (the model's, the teacher's, their gradient).
    words += 2.0 * P + L * block_acts + 3.0 * N * V;
  } else {
    // The streamed student (streamed_student.h): every block's saved input, one block's
    // activations and their gradients, its weights decoded and merged, the residual
    // stream's four arrays, a window's probabilities and their gradient, a tile of the head;
    // and the teacher's probabilities for a batch and for the held-out windows.
    words += L * N * D + 2.0 * block_acts + 2.0 * linear_params / L + 4.0 * N * D +
             2.0 * T * V + std::min(V, 4096.0) * D + (N + double(o.eval_windows) * T) * V;
  }
  RecoveryCost c;
  c.bytes = uint64_t(4.0 * words);
  const double evals = double(o.eval_every > 0 ? o.steps / o.eval_every + 1 : 2);
  // Per step the teacher's forward, the student's, its recomputation and its backward.
  c.flops = double(o.steps) * 8.0 * P * N + evals * 2.0 * P * T * double(o.eval_windows);
  return c;
}

uint64_t recovery_memory_bytes(const LlamaModel& model, const RecoveryOptions& opt) {
  return recovery_cost(model_shape(model.cfg), opt).bytes;
}

namespace {

// What a recovery method trains: its parameters (their gradient buffers in `grads`), how
// the student's targeted weights follow from them (apply), and which linears' x and dy
// give their gradients (index, gradients; into zeroed buffers).
struct Trainables {
  std::vector<ParamRef> params;
  std::vector<std::span<float>> grads;
  std::function<void()> apply;
  // The frozen backward's linears this method trains, by (layer, LlamaLinear), and their
  // gradients from a linear's x and dy.
  std::map<std::pair<int64_t, int>, size_t> index;
  std::function<void(size_t i, const float* x, const float* dy, int64_t rows)> gradients;
};

// Where each named linear sits in the forward pass: (layer, LlamaLinear) -> its position
// in `names`.
std::map<std::pair<int64_t, int>, size_t> linear_index(const std::vector<std::string>& names) {
  std::map<std::pair<int64_t, int>, size_t> out;
  for (size_t i = 0; i < names.size(); ++i) {
    int64_t layer = -1;
    const BlockTensor* t = find_block_tensor(names[i], &layer);
    if (!t || !t->linear()) throw Error("", names[i] + " is not a linear of a decoder block");
    out[{layer, int(block_linear(t->role))}] = i;
  }
  return out;
}

// How the loop runs its student: a training step (the mean loss over B windows, KL from
// the teacher's probabilities when given; each linear's x and dy of the backward to the
// hook) and the held-out evaluation (each window's mean cross-entropy, and KL with the
// teacher's probabilities, added to *ce and *kl).
struct Student {
  std::function<double(std::span<const int32_t> windows, int64_t B, int64_t T,
                       const float* teacher, const LinearGradFn& linear)>
      step;
  std::function<void(std::span<const int32_t> windows, int64_t n, int64_t T, const float* teacher,
                     double* ce, double* kl)>
      evaluate;
  // Set by the loop: called after each block a streamed student's pass runs (progress
  // inside a step); a whole-model student does not call it.
  std::function<void()> on_block;
};

// The student as one f32 model in memory, all activations kept (QAT's, whose latent
// weights are f32 copies of the linears anyway).
Student in_memory_student(const LlamaModel& model, LlamaActivations& act,
                          const CancelToken* cancel) {
  Student s;
  s.step = [&model, &act, cancel](std::span<const int32_t> windows, int64_t B, int64_t T,
                                  const float* teacher, const LinearGradFn& linear) {
    const double loss = llama_train_forward(model, windows, B, T, act, cancel, teacher);
    llama_frozen_backward(model, act, 1.0, linear, cancel);
    return loss;
  };
  s.evaluate = [&model, &act, cancel](std::span<const int32_t> windows, int64_t n, int64_t T,
                                      const float* teacher, double* ce, double* kl) {
    const int64_t V = model.cfg.vocab_size;
    for (int64_t w = 0; w < n; ++w) {
      const auto window = windows.subspan(size_t(w * (T + 1)), size_t(T + 1));
      // The forward's loss is the KL from the teacher when there is one (the training
      // loss's own code); the next tokens' NLL comes from the probabilities it leaves.
      const double loss = llama_train_forward(model, window, 1, T, act, cancel,
                                              teacher ? teacher + w * T * V : nullptr);
      if (!teacher) {
        *ce += loss;
        continue;
      }
      *kl += loss;
      *ce += mean_nll(act.probs.data(), act.targets.data(), T, V);
    }
  };
  return s;
}

// The loop both methods share: batches of the training text, the distillation target,
// the student's step, the method's gradients, clipping, AdamW on the warm-up + cosine
// schedule, and the held-out curve.
void train(RecoveryResult& r, const LlamaConfig& cfg, const LlamaModel* teacher,
           std::span<const int32_t> train_tokens, std::span<const int32_t> eval_tokens,
           const RecoveryOptions& o, Student& student, Trainables& m, const ProgressFn& progress,
           const CancelToken* cancel, const RecoveryStepFn& on_step) {
  const int64_t T = std::min(o.seq_len, cfg.max_seq_len), B = o.batch;
  const int64_t V = cfg.vocab_size;
  const bool distill = o.distill && teacher;
  AdamW adam({.weight_decay = o.weight_decay});
  const LrSchedule sched{o.lr, o.min_lr, o.warmup, o.steps};

  // Held-out windows, with the teacher's probabilities computed once.
  int64_t n_eval = 0;
  const std::vector<int32_t> held_out = held_out_windows(eval_tokens, T, o.eval_windows, &n_eval);
  // The teacher streamed block by block as the student is (its weights read once a batch,
  // cancellable between blocks, at any size).
  std::optional<StreamedStudent> teacher_stream;
  if (teacher) teacher_stream.emplace(*teacher, std::span<const CompressedTensor>{}, nullptr);
  // Progress inside a step (minutes at real size): the teacher's blocks, the student's
  // forward and its backward, counted as they finish.
  int64_t step_now = 0, blocks_done = 0;
  bool in_step = false;
  const int64_t blocks_per_step = (distill ? 3 : 2) * cfg.n_layers;
  auto on_block = [&] {
    if (!in_step || !progress || blocks_per_step == 0) return;
    ++blocks_done;
    const double f = std::min(1.0, double(blocks_done) / double(blocks_per_step));
    char msg[120];
    std::snprintf(msg, sizeof msg, "step %lld/%lld, %.0f%%", (long long)step_now + 1,
                  (long long)o.steps, 100 * f);
    report(progress, "recover", "", (double(step_now) + f) / double(o.steps), msg);
  };
  if (teacher_stream) teacher_stream->set_block_hook(on_block);
  student.on_block = on_block;
  auto teacher_probs = [&](std::span<const int32_t> windows, int64_t n, std::vector<float>& out) {
    out.resize(size_t(n * T * V));
    run_cancellable(cancel,
                    [&] { teacher_stream->probabilities(windows, n, T, B, out.data(), cancel); });
  };
  std::vector<float> held_out_teacher;
  if (teacher && n_eval) teacher_probs(held_out, n_eval, held_out_teacher);
  auto evaluate = [&](RecoveryStep& st) {
    if (!n_eval) return;
    double ce = 0, kl = 0;
    run_cancellable(cancel, [&] {
      student.evaluate(held_out, n_eval, T, teacher ? held_out_teacher.data() : nullptr, &ce, &kl);
    });
    st.eval_loss = ce / double(n_eval);
    if (teacher) st.eval_kl = kl / double(n_eval);
  };
  auto emit = [&](RecoveryStep st) {
    r.history.push_back(st);
    if (on_step) on_step(st);
  };
  std::mt19937_64 sampler(o.seed ^ 0x9E3779B97F4A7C15ull);
  int64_t first = 0;
  if (const RecoveryCheckpoint* c = o.resume) {
    if (c->params.size() != m.params.size() || c->adam_m.size() != m.params.size() ||
        c->adam_v.size() != m.params.size() || c->step < 0 || c->step > o.steps)
      throw Error("", "the recovery checkpoint does not belong to these options");
    for (size_t i = 0; i < m.params.size(); ++i) {
      if (c->params[i].size() != m.params[i].param.size())
        throw Error(
            "", "the recovery checkpoint's parameter " + std::to_string(i) + " has another size");
      std::copy(c->params[i].begin(), c->params[i].end(), m.params[i].param.begin());
    }
    adam.restore(c->step, c->adam_m, c->adam_v);
    std::istringstream(c->sampler) >> sampler;
    r.history = c->history;
    first = c->step;
    m.apply();
  } else {
    m.apply();
    RecoveryStep start;
    start.total = o.steps;
    evaluate(start);
    emit(start);
  }
  auto checkpoint = [&](int64_t done) {
    RecoveryCheckpoint c;
    c.step = done;
    for (const ParamRef& p : m.params) c.params.emplace_back(p.param.begin(), p.param.end());
    c.adam_m = adam.first_moments(), c.adam_v = adam.second_moments();
    std::ostringstream s;
    s << sampler;
    c.sampler = s.str();
    c.history = r.history;
    o.checkpoint(c);
  };

  std::vector<int32_t> windows;
  std::vector<float> soft;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = first; step < o.steps; ++step) {
    random_windows(train_tokens, B, T, sampler, windows);
    RecoveryStep st;
    st.step = step + 1, st.total = o.steps;
    step_now = step, blocks_done = 0, in_step = true;
    if (distill) teacher_probs(windows, B, soft);
    for (std::span<float> g : m.grads) std::fill(g.begin(), g.end(), 0.0f);
    // Frozen weights: no weight gradient is formed; each targeted linear takes its own. A
    // step is numbers only, so a cancel stops it inside (its partial results are dropped).
    run_cancellable(cancel, [&] {
      st.loss = student.step(
          windows, B, T, distill ? soft.data() : nullptr,
          [&](int64_t layer, LlamaLinear which, const float* x, const float* dy, int64_t rows) {
            const auto it = m.index.find({layer, int(which)});
            if (it != m.index.end()) m.gradients(it->second, x, dy, rows);
          });
    });
    double norm2 = 0;
    for (std::span<float> g : m.grads)
      for (float x : g) norm2 += double(x) * x;
    st.grad_norm = std::sqrt(norm2);
    if (o.clip > 0 && st.grad_norm > o.clip) {
      const float k = float(o.clip / st.grad_norm);
      for (std::span<float> g : m.grads)
        for (float& x : g) x *= k;
    }
    in_step = false;
    st.lr = lr_at(sched, step);
    adam.step(m.params, st.lr);
    m.apply();
    if ((o.eval_every > 0 && st.step % o.eval_every == 0) || st.step == o.steps) evaluate(st);
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress) {
      char msg[200];
      std::snprintf(msg, sizeof msg, "step %lld/%lld %s %.4f", (long long)st.step,
                    (long long)st.total, distill ? "kl" : "loss", st.loss);
      report(progress, "recover", "", double(st.step) / double(st.total), msg);
    }
    emit(st);
    if (o.checkpoint && o.checkpoint_every > 0 && st.step % o.checkpoint_every == 0 &&
        st.step < o.steps)
      checkpoint(st.step);
    if (cancel) cancel->throw_if_cancelled();
  }
}

// A parameter and a gradient tensor of its size (appended to `grads`), registered with `m`.
void add_param(Trainables& m, std::span<float> param, Shape shape, std::vector<Tensor>& grads,
               bool decay) {
  grads.push_back(Tensor::zeros(DType::F32, std::move(shape)));
  const std::span<float> g(grads.back().mutable_as<float>(), size_t(grads.back().numel()));
  m.grads.push_back(g);
  m.params.push_back({param, g, decay});
}

}  // namespace

RecoveryResult recover_lora(const LlamaModel& base,
                            std::span<const CompressedTensor> packed,
                            const LlamaModel* teacher,
                            const std::vector<std::string>& targets,
                            std::span<const int32_t> train_tokens,
                            std::span<const int32_t> eval_tokens,
                            const RecoveryOptions& o, const ProgressFn& progress,
                            const CancelToken* cancel, const RecoveryStepFn& on_step,
                            const std::string& packed_source) {
  check_options(base, teacher, train_tokens.size(), std::min(o.seq_len, base.cfg.max_seq_len), o);
  if (targets.empty()) throw Error("", "recovery needs at least one linear to adapt");
  RecoveryResult r;
  r.adapters = init_lora(base, targets, o.rank, o.alpha, o.scaling, o.seed);
  const double s = r.adapters.scale();
  StreamedStudent streamed(base, packed, &r.adapters, packed_source);
  Student student;
  streamed.set_block_hook([&] {
    if (student.on_block) student.on_block();
  });
  student.step = [&](std::span<const int32_t> windows, int64_t B, int64_t T, const float* soft,
                     const LinearGradFn& linear) {
    return streamed.train_step(windows, B, T, soft, linear, cancel);
  };
  student.evaluate = [&](std::span<const int32_t> windows, int64_t n, int64_t T,
                         const float* soft, double* ce, double* kl) {
    streamed.evaluate(windows, n, T, o.batch, soft, ce, kl, cancel);
  };
  Trainables m;
  std::vector<Tensor> g;  // dA, dB of each adapter
  for (LoraAdapter& a : r.adapters.adapters) {
    add_param(m, {a.a.mutable_as<float>(), size_t(a.a.numel())}, a.a.shape(), g, true);
    add_param(m, {a.b.mutable_as<float>(), size_t(a.b.numel())}, a.b.shape(), g, true);
  }
  m.apply = [] {};  // the student merges the adapters as it decodes each block
  m.index = linear_index(targets);
  m.gradients = [&](size_t i, const float* x, const float* dy, int64_t rows) {
    lora_gradients_from(r.adapters.adapters[i], s, x, dy, rows, g[2 * i], g[2 * i + 1]);
  };
  train(r, base.cfg, teacher, train_tokens, eval_tokens, o, student, m, progress, cancel, on_step);
  return r;
}

RecoveryResult recover_qat(const LlamaModel& compressed, const LlamaModel* teacher,
                           const std::vector<CompressedTensor>& layers,
                           std::span<const int32_t> train_tokens,
                           std::span<const int32_t> eval_tokens, const RecoveryOptions& o,
                           const ProgressFn& progress, const CancelToken* cancel,
                           const RecoveryStepFn& on_step) {
  check_options(compressed, teacher, train_tokens.size(),
                std::min(o.seq_len, compressed.cfg.max_seq_len), o);
  if (layers.empty())
    throw Error("", "quantisation-aware training needs at least one quantised layer");
  RecoveryResult r;
  r.merged = clone_model(compressed);
  // Latent weights start at the uncompressed model's (the teacher's) where there is one.
  std::vector<QatLayer> qat;
  std::vector<Tensor*> fake;
  for (const CompressedTensor& c : layers) {
    fake.push_back(find_mut(r.merged, c.name));
    const Tensor* start = fake.back();
    if (teacher)
      for (const auto& [n, t] : teacher->named_tensors())
        if (n == c.name) start = t;
    qat.push_back(qat_layer(c, *start, o.learn_zeros));
  }
  Trainables m;
  std::vector<Tensor> g;      // d latent, d scales (and d zeros) of each layer
  std::vector<size_t> first;  // each layer's d latent in g
  for (QatLayer& l : qat) {
    first.push_back(g.size());
    add_param(m, {l.latent.mutable_as<float>(), size_t(l.latent.numel())}, l.latent.shape(), g,
              true);
    add_param(m, l.scales, {int64_t(l.scales.size())}, g, false);
    if (!l.zeros.empty()) add_param(m, l.zeros, {int64_t(l.zeros.size())}, g, false);
  }
  m.apply = [&] {
    for (size_t i = 0; i < qat.size(); ++i) {
      for (float& sc : qat[i].scales) sc = std::max(sc, 1e-8f);  // a grid step stays positive
      const float maxq = float((1 << qat[i].scheme.bits) - 1);
      for (float& z : qat[i].zeros) z = std::clamp(z, 0.0f, maxq);  // a zero the codes reach
      qat_fake_quantize(qat[i], *fake[i]);
    }
  };
  std::vector<std::string> names;
  for (const CompressedTensor& c : layers) names.push_back(c.name);
  m.index = linear_index(names);
  m.gradients = [&](size_t i, const float* x, const float* dy, int64_t rows) {
    // QAT trains the weight itself: its gradient dŴ = dyᵀ·x, then through the quantiser.
    const QatLayer& l = qat[i];
    Tensor dfake = Tensor::zeros(DType::F32, l.latent.shape());
    matmul_at(dy, x, dfake.mutable_as<float>(), l.scheme.rows, l.scheme.cols, rows);
    const size_t k = first[i];
    qat_gradients(l, dfake, g[k], {g[k + 1].mutable_as<float>(), l.scales.size()},
                  l.zeros.empty() ? std::span<float>{}
                                  : std::span<float>{g[k + 2].mutable_as<float>(), l.zeros.size()});
  };
  LlamaActivations act;
  Student student = in_memory_student(r.merged, act, cancel);
  train(r, r.merged.cfg, teacher, train_tokens, eval_tokens, o, student, m, progress, cancel,
        on_step);
  for (const QatLayer& l : qat) r.quantized.push_back(qat_pack(l));
  return r;
}

namespace {

// Block-AP as a recovery: its trained layers and norms, and as the curve one point per
// block (its last epoch's training MSE, at the optimizer steps done so far).
RecoveryResult recover_block_ap(const LlamaModel* teacher, const std::vector<CompressedTensor>& layers,
                                std::span<const int32_t> train_tokens, const RecoveryOptions& o,
                                const ProgressFn& progress, const CancelToken* cancel) {
  if (!teacher)
    throw Error("", "Block-AP trains against the uncompressed model, and none was given");
  BlockApOptions b = o.block_ap;
  b.seq_len = std::min(b.seq_len, teacher->cfg.max_seq_len);
  BlockApResult ap = block_ap(*teacher, layers, train_tokens, b, progress, cancel,
                              o.block_checkpoint, o.block_resume);
  RecoveryResult r;
  r.quantized = std::move(ap.quantized);
  r.dense = std::move(ap.norms);
  const int64_t per_block = b.epochs * ((b.train_windows + b.batch - 1) / b.batch);
  RecoveryStep s;
  s.total = per_block * int64_t(ap.blocks.size());
  for (const BlockApBlock& k : ap.blocks) {
    if (k.val_loss.empty()) continue;  // nothing of it trained
    s.step += per_block, s.seconds += k.seconds;
    s.loss = k.train_loss.back();
    r.history.push_back(s);
  }
  return r;
}

}  // namespace

RecoveryResult recover_compressed(const LlamaModel& compressed, const LlamaModel* teacher,
                                  const std::vector<CompressedTensor>& layers,
                                  std::span<const int32_t> train_tokens,
                                  std::span<const int32_t> eval_tokens, const RecoveryOptions& o,
                                  const ProgressFn& progress, const CancelToken* cancel) {
  require_trainable(compressed.cfg);
  if (o.method == RecoveryOptions::Method::Qat)
    return recover_qat(compressed, teacher, layers, train_tokens, eval_tokens, o, progress, cancel);
  if (o.method == RecoveryOptions::Method::BlockAp)
    return recover_block_ap(teacher, layers, train_tokens, o, progress, cancel);
  std::vector<std::string> targets;
  for (const CompressedTensor& c : layers) targets.push_back(c.name);
  return recover_lora(compressed, layers, teacher, targets, train_tokens, eval_tokens, o,
                      progress, cancel);
}

void decode_layers_into(LlamaModel& model, const std::vector<CompressedTensor>& layers,
                        const std::string& source) {
  const auto packed = packed_by_name(model, layers, source);  // checked before any decode
  for (auto& [n, t] : model.named_tensors())
    if (const auto it = packed.find(n); it != packed.end()) *t = it->second->dequantize();
}

FoldedLayer fold_layer(const CompressedTensor& c, const RecoveryResult& r) {
  for (const CompressedTensor& q : r.quantized)
    if (q.name == c.name) return {q, true, std::nullopt};
  for (const LoraAdapter& a : r.adapters.adapters)
    if (a.name == c.name) {
      const Tensor frozen = c.dequantize();
      RecodedLayer l = recode_merged(c, frozen, merge_lora(frozen, a, r.adapters.scale()));
      return {std::move(l.tensor), true, l.added_error};
    }
  return {c, false, std::nullopt};
}

}  // namespace mcw
