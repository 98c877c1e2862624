// The block-streamed student of a LoRA recovery against the whole-model training pass on
// the same weights: the frozen model in bf16 with packed layers and adapters, decoded one
// block at a time, must give the loss, the adapters' gradients and the held-out scores that
// llama_train_forward / llama_frozen_backward give on the model decoded whole to f32.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <thread>

#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/kernels/ops.h"
#include "engine/model/llama_tensors.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/lora.h"
#include "engine/train/lora_lm.h"
#include "engine/train/recovery.h"
#include "engine/train/streamed_student.h"
#include "engine/train/train_ops.h"
#include "llama_test_util.h"
#include "cancel_latency.h"

using namespace mcw;

namespace {

// Every matrix of `m` stored as bf16 (as a real checkpoint holds it); vectors stay f32.
LlamaModel to_bf16(const LlamaModel& m) {
  LlamaModel out = m;
  for (auto& [name, t] : out.named_tensors()) {
    if (t->ndim() != 2) continue;
    Tensor b = Tensor::zeros(DType::BF16, t->shape(), name);
    f32_to_bf16_row(t->as<float>(), b.mutable_as<uint16_t>(), size_t(t->numel()));
    *t = std::move(b);
  }
  return out;
}

struct StudentModels {
  LlamaModel stored;                     // bf16 matrices
  std::vector<CompressedTensor> packed;  // 3-bit RTN of two linears
  LoraAdapters adapters;
  LlamaModel reference;  // f32: stored decoded, packed layers decoded in, adapters merged
};

StudentModels make(const LlamaConfig& cfg) {
  StudentModels s;
  s.stored = to_bf16(test::random_llama(cfg, 41));
  LlamaModel decoded = clone_model(s.stored);
  for (const char* name :
       {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"})
    for (const auto& [n, t] : decoded.named_tensors())
      if (n == name) {
        RtnOptions o;
        o.bits = 3, o.group_size = 8;
        s.packed.push_back(
            quantize_rtn(t->as<float>(), t->dim(0), t->dim(1), o, nullptr, nullptr, n));
      }
  decode_layers_into(decoded, s.packed, "packed");
  // Adapters on a packed layer, a bf16 one and one of each kind more, with B nonzero.
  s.adapters =
      init_lora(decoded,
                {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.v_proj.weight",
                 "model.layers.1.self_attn.o_proj.weight", "model.layers.1.mlp.down_proj.weight"},
                2, 4, LoraScaling::Lora, 3);
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 0.3f);
  for (LoraAdapter& a : s.adapters.adapters)
    for (int64_t i = 0; i < a.b.numel(); ++i) a.b.mutable_as<float>()[i] = n(rng);
  s.reference = clone_model(decoded);
  apply_lora(s.reference, s.adapters, "");
  return s;
}

// Each adapter's (dA, dB) from the x and dy a backward hands over.
struct Grads {
  std::map<std::pair<int64_t, int>, size_t> index;
  std::vector<Tensor> g;
  int calls = 0;
  explicit Grads(const LoraAdapters& ad) {
    for (size_t i = 0; i < ad.adapters.size(); ++i) {
      int64_t layer = 0;
      const BlockTensor* t = find_block_tensor(ad.adapters[i].name, &layer);
      index[{layer, int(block_linear(t->role))}] = i;
      g.push_back(Tensor::zeros(DType::F32, ad.adapters[i].a.shape()));
      g.push_back(Tensor::zeros(DType::F32, ad.adapters[i].b.shape()));
    }
  }
  LinearGradFn hook(const LoraAdapters& ad) {
    return [this, &ad](int64_t layer, LlamaLinear which, const float* x, const float* dy,
                       int64_t rows) {
      if (which != LlamaLinear::Head) ++calls;
      const auto it = index.find({layer, int(which)});
      if (it == index.end()) return;
      lora_gradients_from(ad.adapters[it->second], ad.scale(), x, dy, rows, g[2 * it->second],
                          g[2 * it->second + 1]);
    };
  }
};

std::vector<float> teacher_probs(const LlamaModel& teacher, const std::vector<int32_t>& windows,
                                 int64_t B, int64_t T) {
  const int64_t V = teacher.cfg.vocab_size;
  std::vector<float> p(size_t(B * T * V));
  for (int64_t b = 0; b < B; ++b) {
    KVCache cache(teacher.cfg, T);
    llama_forward(teacher,
                  std::span<const int32_t>(windows).subspan(size_t(b * (T + 1)), size_t(T)), cache,
                  p.data() + b * T * V);
    for (int64_t t = 0; t < T; ++t) softmax_row(p.data() + (b * T + t) * V, V);
  }
  return p;
}

}  // namespace

TEST(StreamedStudent, TrainStepMatchesTheWholeModelPass) {
  for (const bool tied : {false, true}) {
    const LlamaConfig cfg = test::tiny_config(4, 2, tied);
    StudentModels s = make(cfg);
    const LlamaModel teacher = test::random_llama(cfg, 42);
    const int64_t B = 3, T = 7;
    const auto windows = test::random_tokens(size_t(B * (T + 1)), cfg.vocab_size, 43);
    const std::vector<float> soft = teacher_probs(teacher, windows, B, T);
    for (const bool distill : {false, true}) {
      const float* tp = distill ? soft.data() : nullptr;
      LlamaActivations act;
      const double ref_loss = llama_train_forward(s.reference, windows, B, T, act, nullptr, tp);
      Grads ref(s.adapters);
      llama_frozen_backward(s.reference, act, 1.0, ref.hook(s.adapters));

      StreamedStudent student(s.stored, s.packed, &s.adapters);
      Grads got(s.adapters);
      const double loss = student.train_step(windows, B, T, tp, got.hook(s.adapters));
      EXPECT_NEAR(loss, ref_loss, 1e-5 * ref_loss) << "tied " << tied << " distill " << distill;
      EXPECT_EQ(got.calls, 7 * cfg.n_layers);
      for (size_t i = 0; i < ref.g.size(); ++i) {
        double norm = 0;
        for (int64_t j = 0; j < ref.g[i].numel(); ++j)
          norm = std::max(norm, double(std::abs(ref.g[i].as<float>()[j])));
        EXPECT_GT(norm, 1e-6) << i;  // every adapter has a gradient to compare
        for (int64_t j = 0; j < ref.g[i].numel(); ++j)
          ASSERT_NEAR(got.g[i].as<float>()[j], ref.g[i].as<float>()[j], 1e-4 * norm)
              << "gradient " << i << "[" << j << "] tied " << tied << " distill " << distill;
      }
    }
  }
}

TEST(StreamedStudent, EvaluatesAsTheWholeModelDoes) {
  const LlamaConfig cfg = test::tiny_config();
  StudentModels s = make(cfg);
  const LlamaModel teacher = test::random_llama(cfg, 44);
  const int64_t n = 5, T = 6, V = cfg.vocab_size;
  const auto windows = test::random_tokens(size_t(n * (T + 1)), V, 45);
  const std::vector<float> soft = teacher_probs(teacher, windows, n, T);
  double ref_ce = 0, ref_kl = 0;
  for (int64_t w = 0; w < n; ++w) {
    LlamaActivations act;
    const auto window =
        std::span<const int32_t>(windows).subspan(size_t(w * (T + 1)), size_t(T + 1));
    ref_ce += llama_train_forward(s.reference, window, 1, T, act);
    ref_kl += llama_train_forward(s.reference, window, 1, T, act, nullptr, soft.data() + w * T * V);
  }
  StreamedStudent student(s.stored, s.packed, &s.adapters);
  for (const int64_t group : {1, 2, 8}) {
    double ce = 0, kl = 0, ce_only = 0, none = 0;
    student.evaluate(windows, n, T, group, soft.data(), &ce, &kl);
    student.evaluate(windows, n, T, group, nullptr, &ce_only, &none);
    EXPECT_NEAR(ce, ref_ce, 1e-5 * ref_ce) << group;
    EXPECT_NEAR(ce_only, ref_ce, 1e-5 * ref_ce) << group;
    EXPECT_NEAR(kl, ref_kl, 1e-5 * ref_kl) << group;
    EXPECT_EQ(none, 0.0);
  }
}

TEST(StreamedStudent, RefusesAPackedLayerTheModelLacks) {
  StudentModels s = make(test::tiny_config());
  s.packed[0].name = "model.layers.9.self_attn.q_proj.weight";
  try {
    StreamedStudent student(s.stored, s.packed, nullptr, "dir/packed.safetensors");
    FAIL() << "a packed layer the model lacks was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dir/packed.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("layers.9"), std::string::npos) << e.what();
  }
}

// Adapters kept apart (lora_lm.h) on the bf16 model give the logits of the model with the
// adapters merged into f32 weights; a module the model lacks is refused naming the adapter.
TEST(LoraLmView, RunsAsTheMergedModel) {
  const LlamaConfig cfg = test::tiny_config();
  StudentModels s = make(cfg);
  LlamaModel merged = clone_model(s.stored);  // no packed layers this time
  apply_lora(merged, s.adapters, "");
  const auto lm = lora_lm_view(s.stored, s.adapters, "adapter");
  const auto tokens = test::random_tokens(9, cfg.vocab_size, 46);
  const int64_t V = cfg.vocab_size;
  std::vector<float> got(tokens.size() * size_t(V)), want(got.size());
  lm->start(16)->forward(tokens, got.data());
  KVCache cache(cfg, 16);
  llama_forward(merged, tokens, cache, want.data());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, double(std::abs(got[i] - want[i]))),
    scale = std::max(scale, double(std::abs(want[i])));
  EXPECT_LT(worst, 1e-4 * scale);
  // Without the adapters' term the logits differ visibly (the test can fail).
  std::vector<float> plain(got.size());
  KVCache cache2(cfg, 16);
  llama_forward(s.stored, tokens, cache2, plain.data());
  double moved = 0;
  for (size_t i = 0; i < got.size(); ++i)
    moved = std::max(moved, double(std::abs(plain[i] - want[i])));
  EXPECT_GT(moved, 100 * worst + 1e-3);

  LoraAdapters wrong = s.adapters;
  wrong.adapters[0].name = "model.layers.7.self_attn.q_proj.weight";
  EXPECT_THROW(lora_lm_view(s.stored, wrong, "adapter"), Error);
}

// A teacher streamed block by block gives llama_forward's probabilities (softmaxed logits),
// in groups of any size, for a model stored in bf16.
TEST(StreamedStudent, ProbabilitiesAreLlamaForwardsSoftmax) {
  const LlamaConfig cfg = test::tiny_config(4, 2, true);
  const LlamaModel teacher = to_bf16(test::random_llama(cfg, 47));
  const int64_t n = 5, T = 6;
  const auto windows = test::random_tokens(size_t(n * (T + 1)), cfg.vocab_size, 48);
  const std::vector<float> want = teacher_probs(teacher, windows, n, T);
  StreamedStudent stream(teacher, {}, nullptr);
  for (const int64_t group : {1, 3, 8}) {
    std::vector<float> got(want.size());
    stream.probabilities(windows, n, T, group, got.data());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 2e-6) << group << " " << i;
  }
}

// A recovery step of a model where one takes a second or more stops within a quarter of it
// after a cancel (the step runs inside run_cancellable, not just polled between steps).
TEST(Recovery, CancelStopsInsideALongStep) {
  LlamaConfig c = test::tiny_config(8, 8);
  c.dim = 1024, c.head_dim = 128, c.hidden_dim = 5632, c.n_layers = 1;
  c.vocab_size = 256, c.max_seq_len = 256;
  const LlamaModel m = test::random_llama(c, 9);
  const auto text = test::random_tokens(4096, c.vocab_size, 10);
  RecoveryOptions o;
  o.steps = 1, o.batch = 4, o.seq_len = 256, o.eval_windows = 0;
  const std::vector<std::string> targets = {"model.layers.0.self_attn.q_proj.weight"};
  using clock = std::chrono::steady_clock;
  const auto s0 = clock::now();
  recover_lora(m, {}, &m, targets, text, {}, o);
  const double step_s = std::chrono::duration<double>(clock::now() - s0).count();

  // Cancels at three points of the first step (one of them inside the block's backward,
  // the longest stretch between the polls at block boundaries).
  o.steps = 100;
  double worst = 0;
  for (const double at : {0.3, 0.5, 0.7}) {
    CancelToken cancel;
    const test::CancelLatency t = test::measure_cancel(
        cancel, [&](double s) { return s >= at * step_s; },
        [&] { recover_lora(m, {}, &m, targets, text, {}, o, {}, &cancel); });
    worst = std::max(worst, t.latency);
  }
  EXPECT_LT(worst, 0.2 * step_s) << "a step takes " << step_s << " s";
  RecordProperty("step_seconds", std::to_string(step_s));
  RecordProperty("cancel_latency_seconds", std::to_string(worst));
}

// Progress inside a step: every block of the teacher's and the student's passes reports,
// so the fraction rises within each step and never goes back.
TEST(Recovery, ReportsProgressInsideAStep) {
  const LlamaConfig cfg = test::tiny_config();
  const LlamaModel m = test::random_llama(cfg, 15);
  const auto text = test::random_tokens(400, cfg.vocab_size, 16);
  RecoveryOptions o;
  o.steps = 2, o.batch = 2, o.seq_len = 8, o.eval_windows = 0;
  std::vector<double> fractions;
  const ProgressFn progress = [&](const ProgressEvent& e) { fractions.push_back(e.fraction); };
  recover_lora(m, {}, &m, {"model.layers.0.self_attn.q_proj.weight"}, text, {}, o, progress);
  // Per step: 3 passes of 2 blocks (teacher, forward, backward), then the step's own report.
  ASSERT_EQ(fractions.size(), size_t(o.steps * (3 * cfg.n_layers + 1)));
  for (size_t i = 1; i < fractions.size(); ++i) EXPECT_GE(fractions[i], fractions[i - 1]) << i;
  EXPECT_NEAR(fractions[0], 1.0 / 6 / 2, 1e-12);  // one of six blocks of step 1 of 2
  EXPECT_EQ(fractions.back(), 1.0);
}
