// The trainer end to end on tiny problems: it learns, it is deterministic, it cancels;
// and the byte tokenizer it uses for now.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "engine/model/bpe_tokenizer.h"
#include "engine/model/byte_tokenizer.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/trainer.h"
#include "llama_test_util.h"
#include "cancel_latency.h"

using namespace mcw;

namespace {

LlamaConfig small_config(int64_t vocab) {
  LlamaConfig c;
  c.vocab_size = vocab;
  c.dim = 32;
  c.hidden_dim = 64;
  c.n_layers = 1;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.max_seq_len = 16;
  return c;
}

// A 24-symbol phrase over 12 symbols, repeated: symbols recur with different successors,
// so predicting it needs the attention to look back, not just the previous token.
std::vector<int32_t> repeated_text(size_t n) {
  const int32_t phrase[] = {1, 2, 3, 4, 5, 1, 2, 6, 7, 8, 3, 9,
                            10, 1, 11, 4, 5, 2, 6, 0, 7, 8, 9, 10};
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = phrase[i % 24];
  return t;
}

TrainOptions quick_options(int64_t steps) {
  TrainOptions o;
  o.steps = steps;
  o.batch = 4;
  o.seq_len = 16;
  o.lr = 1e-2;
  o.min_lr = 1e-3;
  o.warmup = 10;
  o.eval_every = 0;
  o.eval_windows = 4;
  o.seed = 5;
  return o;
}

}  // namespace

TEST(TrainOverfit, TinyModelLearnsARepeatedText) {
  const auto text = repeated_text(600);
  const TrainOptions o = quick_options(150);
  const TrainResult r = train_llama(small_config(12), text, repeated_text(100), o);
  ASSERT_EQ(r.history.size(), 150u);
  RecordProperty("final_loss", std::to_string(r.history.back().loss));
  EXPECT_GT(r.history.front().loss, 2.0);  // ~ln 12 = 2.48 at the start
  EXPECT_LT(r.history.back().loss, 0.2);   // the phrase is fully predictable after 4 tokens
  ASSERT_TRUE(r.history.back().eval_loss.has_value());
  EXPECT_LT(*r.history.back().eval_loss, 0.2);
  EXPECT_NEAR(r.history.back().lr, o.min_lr, 1e-12);
  EXPECT_NEAR(eval_loss(r.model, repeated_text(100), 16, 4), *r.history.back().eval_loss, 1e-12);
}

TEST(TrainDeterminism, SameSeedSameRunOtherSeedOtherRun) {
  const auto text = repeated_text(300);
  TrainOptions o = quick_options(6);
  o.micro_batches = 2;
  const TrainResult a = train_llama(small_config(12), text, {}, o);
  const TrainResult b = train_llama(small_config(12), text, {}, o);
  o.seed = 6;
  const TrainResult c = train_llama(small_config(12), text, {}, o);
  for (size_t i = 0; i < a.history.size(); ++i) {
    EXPECT_EQ(a.history[i].loss, b.history[i].loss);
    EXPECT_EQ(a.history[i].grad_norm, b.history[i].grad_norm);
  }
  EXPECT_NE(a.history[0].loss, c.history[0].loss);
  auto wa = a.model.named_tensors();
  auto wb = b.model.named_tensors();
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_EQ(wa[i].second->to_f32(), wb[i].second->to_f32());
}

TEST(TrainInit, ScaledNormalWeightsAndUnitNorms) {
  LlamaConfig c = small_config(64);
  c.n_layers = 2;
  c.dim = 64;
  const LlamaModel m = init_llama(c, 3, 0.02);
  auto stdev = [](const Tensor& t) {
    double s = 0, ss = 0;
    const float* p = t.as<float>();
    for (int64_t i = 0; i < t.numel(); ++i) s += p[i], ss += double(p[i]) * p[i];
    const double n = double(t.numel()), mean = s / n;
    return std::sqrt(ss / n - mean * mean);
  };
  EXPECT_NEAR(stdev(m.tok_embd), 0.02, 0.002);
  EXPECT_NEAR(stdev(m.layers[0].w_gate), 0.02, 0.002);
  EXPECT_NEAR(stdev(m.layers[1].w_down), 0.01, 0.001);  // 0.02 / sqrt(2 · 2 layers)
  EXPECT_NEAR(stdev(m.output), 0.02, 0.002);
  for (const Tensor* t : {&m.out_norm, &m.layers[1].attn_norm, &m.layers[0].ffn_norm})
    for (float v : t->to_f32()) EXPECT_EQ(v, 1.0f);
  EXPECT_EQ(m.named_tensors()[1].second->name(), "model.layers.0.input_layernorm.weight");
}

TEST(TrainCancel, StopsWithinTheStepItWasAskedIn) {
  const auto text = repeated_text(300);
  CancelToken cancel;
  int steps_seen = 0;
  auto on_step = [&](const TrainStep& s) {
    steps_seen = int(s.step);
    if (s.step == 3) cancel.cancel();
  };
  EXPECT_THROW(train_llama(small_config(12), text, {}, quick_options(50), {}, &cancel, on_step),
               Cancelled);
  EXPECT_EQ(steps_seen, 3);
  EXPECT_THROW(train_llama(small_config(12), text, {}, quick_options(50), {}, &cancel), Cancelled);
}

TEST(TrainOptionsCheck, RejectsWhatCannotWork) {
  const auto text = repeated_text(300);
  TrainOptions o = quick_options(5);
  o.micro_batches = 3;  // 4 windows do not split in 3
  EXPECT_THROW(train_llama(small_config(12), text, {}, o), Error);
  EXPECT_THROW(train_llama(small_config(12), repeated_text(16), {}, quick_options(5)), Error);
  o = quick_options(5);
  o.min_lr = 2 * o.lr;
  EXPECT_THROW(train_llama(small_config(12), text, {}, o), Error);
  EXPECT_THROW(train_llama(small_config(12), text, {}, quick_options(0)), Error);
}

TEST(TrainTokenizer, BytesRoundTripAndHfByteLevelVocabulary) {
  const std::string s("Fortune\n%\n\xC3\xA9\x00!", 14);
  const auto j = byte_tokenizer_json();
  // The file MCW writes beside a trained model, loaded the way a user's tools load it,
  // gives exactly the ids training used.
  const BpeTokenizer hf(nlohmann::json::parse(j.dump()), "byte tokenizer.json");
  const auto ids = hf.encode(s, false);
  EXPECT_EQ(ids, ByteTokenizer(false, false).encode(s, false));
  EXPECT_EQ(ids[10], 0xC3);
  EXPECT_EQ(ids[12], 0);
  EXPECT_EQ(hf.decode(ids), s);

  const auto& vocab = j["model"]["vocab"];
  ASSERT_EQ(vocab.size(), 256u);  // 256 distinct characters
  EXPECT_EQ(vocab["A"], 65);
  EXPECT_EQ(vocab["\xC4\xA0"], 32);  // space is U+0120 'Ġ' in byte-level BPE
  EXPECT_EQ(vocab["\xC4\x8A"], 10);  // newline is U+010A 'Ċ'
  EXPECT_EQ(vocab["\xC4\x80"], 0);   // byte 0 is U+0100
  EXPECT_EQ(vocab["\xC2\xA1"], 0xA1);
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_TRUE(j["model"]["merges"].empty());
}

// A training step of a model where one takes a second or more stops within a quarter of it
// after a cancel (the gradients run inside run_cancellable, not only polled between
// layers).
TEST(TrainCancel, StopsInsideALongStep) {
  LlamaConfig c;
  c.vocab_size = 256, c.dim = 768, c.n_heads = 8, c.n_kv_heads = 8, c.head_dim = 96;
  c.hidden_dim = 4096, c.n_layers = 1, c.max_seq_len = 256;
  const auto text = test::random_tokens(4096, c.vocab_size, 12);
  TrainOptions o;
  o.steps = 100, o.batch = 4, o.seq_len = 256, o.eval_every = 0;
  // Step 2's duration measured from step 1's end; the cancel comes halfway through step 3.
  std::atomic<double> step1_end{-1}, step2_end{-1};
  CancelToken cancel;
  std::atomic<double> now{0};  // the canceller's clock, seconds since the start
  const test::CancelLatency t = test::measure_cancel(
      cancel,
      [&](double s) {
        now = s;
        return step2_end >= 0 && s >= step2_end + (step2_end - step1_end) / 2;
      },
      [&] {
        train_llama(c, text, {}, o, {}, &cancel, [&](const TrainStep& st) {
          if (st.step == 1) step1_end = now.load();
          if (st.step == 2) step2_end = now.load();
        });
      });
  const double step_s = step2_end - step1_end;
  EXPECT_LT(t.latency, 0.25 * step_s) << "a step takes " << step_s << " s";
  RecordProperty("step_seconds", std::to_string(step_s));
  RecordProperty("cancel_latency_seconds", std::to_string(t.latency));
}
