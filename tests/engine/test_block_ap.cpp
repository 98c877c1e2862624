// Block-AP (EfficientQAT's block-wise training): EfficientQAT's quantiser rule against its
// formula, the block's weight gradients against finite differences of a naive block, one
// step against the paper's procedure written out here, the streams against a naive pipeline,
// resume, and what it refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <random>

#include "engine/compress/rtn.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/kernels/ops.h"
#include "engine/model/llama_tensors.h"
#include "engine/train/block_ap.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/qat.h"
#include "engine/train/trainer.h"
#include "llama_reference.h"
#include "llama_test_util.h"

using namespace mcw;
using test::Vec;

namespace {

// Every block linear of `m` quantised by RTN (asymmetric min–max grid, EfficientQAT's start).
std::vector<CompressedTensor> rtn_layers(const LlamaModel& m, int bits, int64_t group) {
  std::vector<CompressedTensor> out;
  RtnOptions o;
  o.bits = bits, o.group_size = group;
  for (int64_t l = 0; l < m.cfg.n_layers; ++l)
    for (const BlockTensor& t : llama_block_tensors()) {
      if (!t.linear() || !t.present(m.cfg)) continue;
      const Tensor& w = m.layers[size_t(l)].*t.member;
      out.push_back(quantize_rtn(w.as<float>(), w.dim(0), w.dim(1), o, nullptr, nullptr,
                                 block_tensor_name(l, t)));
    }
  return out;
}

std::vector<Vec> embed(const LlamaModel& m, const std::vector<int32_t>& toks) {
  std::vector<Vec> x;
  for (int32_t t : toks)
    x.emplace_back(m.tok_embd.as<float>() + t * m.cfg.dim, m.tok_embd.as<float>() + (t + 1) * m.cfg.dim);
  return x;
}

double naive_mse(const std::vector<Vec>& y, const std::vector<Vec>& target) {
  double sum = 0;
  size_t n = 0;
  for (size_t t = 0; t < y.size(); ++t)
    for (size_t i = 0; i < y[t].size(); ++i, ++n) sum += (y[t][i] - target[t][i]) * (y[t][i] - target[t][i]);
  return sum / double(n);
}

// EfficientQAT's fake quantiser, written from its formula: ŵ = s·(clamp(round(w/s) +
// round(z), 0, maxq) − round(z)).
double efficient_fake(double w, double s, double z, double maxq) {
  const double zr = std::nearbyint(std::clamp(z, 0.0, maxq));
  return s * (std::clamp(std::nearbyint(w / s) + zr, 0.0, maxq) - zr);
}

LlamaLayer copy_layer(const LlamaConfig& c, const LlamaLayer& L) {
  LlamaLayer out = L;
  for (const BlockTensor& t : llama_block_tensors())
    if (t.present(c)) out.*t.member = (L.*t.member).f32_copy();
  return out;
}

}  // namespace

// The rule's forward is the formula above and its gradients the straight-through ones
// without LSQ's scale: dw = d inside the range; ds = d·(round(w/s) − w/s) inside and
// d·(clamped code − round(z)) outside; dz = −d·s outside. Zeros pack as integers.
TEST(Qat, EfficientQatRuleRoundsZerosAndDropsLsqScale) {
  const int bits = 2, rows = 4, cols = 32, group = 16;
  const double maxq = 3;
  std::mt19937 rng(3);
  const Tensor w0 = test::random_tensor({rows, cols}, rng, 0.5f);
  RtnOptions o;
  o.bits = bits, o.group_size = group;
  const CompressedTensor c = quantize_rtn(w0.as<float>(), rows, cols, o, nullptr, nullptr, "q");
  const Tensor latent = test::random_tensor({rows, cols}, rng, 0.8f);
  QatLayer l = qat_layer(c, latent, false, QatRule::EfficientQat);
  ASSERT_EQ(l.zeros.size(), l.scales.size());
  for (size_t g = 0; g < l.zeros.size(); ++g) l.zeros[g] += 0.3f * float(g % 3) - 0.3f;  // off-grid
  Tensor fake = Tensor::zeros(DType::F32, {rows, cols});
  qat_fake_quantize(l, fake);
  const Tensor d = test::random_tensor({rows, cols}, rng, 1.0f);
  Tensor dw = Tensor::zeros(DType::F32, {rows, cols});
  std::vector<float> ds(l.scales.size()), dz(l.zeros.size());
  qat_gradients(l, d, dw, ds, dz);
  std::vector<double> ds_ref(ds.size()), dz_ref(dz.size());
  int clamped = 0;
  for (int64_t i = 0; i < rows * cols; ++i) {
    const size_t g = size_t((i / cols) * (cols / group) + (i % cols) / group);
    const double s = f16_to_f32(f32_to_f16(l.scales[g])), z = std::nearbyint(l.zeros[g]);
    const double w = latent.as<float>()[i], dd = d.as<float>()[i];
    EXPECT_NEAR(fake.as<float>()[i], efficient_fake(w, s, l.zeros[g], maxq), 1e-6) << i;
    const double q = std::nearbyint(w / s) + z;
    if (q < 0 || q > maxq) {
      ++clamped;
      EXPECT_EQ(dw.as<float>()[i], 0.0f);
      ds_ref[g] += dd * (std::clamp(q, 0.0, maxq) - z);
      dz_ref[g] -= dd * s;
    } else {
      EXPECT_EQ(dw.as<float>()[i], float(dd));
      ds_ref[g] += dd * (std::nearbyint(w / s) - w / s);
    }
  }
  EXPECT_GT(clamped, 0);
  for (size_t g = 0; g < ds.size(); ++g) {
    EXPECT_NEAR(ds[g], ds_ref[g], 1e-4 * (1 + std::abs(ds_ref[g]))) << g;
    EXPECT_NEAR(dz[g], dz_ref[g], 1e-4 * (1 + std::abs(dz_ref[g]))) << g;
  }
  const CompressedTensor packed = qat_pack(l);
  for (size_t g = 0; g < packed.zeros.size(); ++g)
    EXPECT_EQ(packed.zeros[g], std::nearbyint(l.zeros[g])) << g;
  const Tensor back = packed.dequantize();
  for (int64_t i = 0; i < rows * cols; ++i) EXPECT_EQ(back.as<float>()[i], fake.as<float>()[i]);
}

// llama_block_backward: the gradient of the block's output MSE w.r.t. every kind of weight
// of the block (q/k/v biases included) against central differences of a naive block in
// double.
TEST(BlockAp, BlockGradientsMatchFiniteDifferences) {
  LlamaConfig c = test::tiny_config();
  c.n_layers = 1, c.qkv_bias = true;
  const LlamaModel m = test::random_llama(c, 5);
  LlamaLayer L = copy_layer(c, m.layers[0]);
  const int64_t B = 2, T = 5, D = c.dim;
  std::mt19937 rng(1);
  const Tensor xin = test::random_tensor({B * T, D}, rng, 1.0f);
  const Tensor target = test::random_tensor({B * T, D}, rng, 1.0f);
  auto naive_loss = [&] {
    double sum = 0;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<Vec> x, y;
      for (int64_t t = 0; t < T; ++t) {
        x.emplace_back(xin.as<float>() + (b * T + t) * D, xin.as<float>() + (b * T + t + 1) * D);
        y.emplace_back(target.as<float>() + (b * T + t) * D,
                       target.as<float>() + (b * T + t + 1) * D);
      }
      test::reference_block(c, L, x);
      sum += naive_mse(x, y);
    }
    return sum / double(B);
  };
  const std::vector<float> inv_freq = rope_inv_freq(c);
  std::vector<float> x(xin.as<float>(), xin.as<float>() + B * T * D), dy(x.size());
  LayerActivations A;
  llama_block_forward(c, L, B, T, inv_freq.data(), x, A);
  for (size_t i = 0; i < x.size(); ++i)
    dy[i] = 2.0f * (x[i] - target.as<float>()[i]) / float(x.size());
  LlamaLayer G = zeros_like(c, L);
  BlockGradients scratch;
  llama_block_backward(c, L, A, B, T, inv_freq.data(), dy, G, scratch);
  std::mt19937 pick(2);
  for (const BlockTensor& t : llama_block_tensors()) {
    if (!t.present(c)) continue;
    float* w = (L.*t.member).mutable_as<float>();
    const float* g = (G.*t.member).as<float>();
    const int64_t n = (L.*t.member).numel();
    double gmax = 0;
    for (int64_t i = 0; i < n; ++i) gmax = std::max(gmax, std::abs(double(g[i])));
    for (int k = 0; k < 6; ++k) {
      const int64_t i = int64_t(pick() % uint32_t(n));
      const float w0 = w[i], h = 1e-2f;
      w[i] = w0 + h;
      const double up = naive_loss();
      w[i] = w0 - h;
      const double down = naive_loss();
      w[i] = w0;
      const double fd = (up - down) / (2.0 * double(h));
      EXPECT_NEAR(g[i], fd, 2e-3 * gmax + 1e-6) << t.hf << " " << i;
    }
  }
}

// One step of Block-AP on a one-block model and one window, written out from the paper and
// its reference: the target is the uncompressed block's output; the loss the MSE of the
// fake-quantised block; its gradient w.r.t. the fake weights and the norms (here by central
// differences of the naive block) goes through EfficientQAT's straight-through rule, and
// AdamW's first step moves each parameter by lr·g/(|g| + eps). The packed grids and the
// trained norms must be that step's.
TEST(BlockAp, OneStepIsThePapersUpdate) {
  LlamaConfig c = test::tiny_config();
  c.n_layers = 1;
  const LlamaModel m = test::random_llama(c, 11);
  const int64_t T = 4;
  const std::vector<int32_t> toks = test::random_tokens(size_t(T + 1), c.vocab_size, 4);
  const auto layers = rtn_layers(m, 2, 8);
  BlockApOptions o;
  o.train_windows = 1, o.val_windows = 0, o.seq_len = T, o.batch = 1, o.epochs = 1;
  o.quant_lr = 1e-3, o.weight_lr = 5e-4;  // large enough to move codes and f16 scales
  const BlockApResult r = block_ap(m, layers, toks, o);  // one window: it starts at token 0
  ASSERT_EQ(r.quantized.size(), layers.size());
  ASSERT_EQ(r.norms.size(), 2u);

  // The naive step. Fake weights of every layer from the layer's grid (integer zeros).
  const double maxq = 3;
  LlamaLayer fakeL = copy_layer(c, m.layers[0]);
  std::vector<Tensor*> fake;
  for (const CompressedTensor& q : layers) {
    int64_t layer = 0;
    const BlockTensor* t = find_block_tensor(q.name, &layer);
    Tensor& f = fakeL.*t->member;
    const Tensor& w = m.layers[0].*t->member;
    for (int64_t i = 0; i < f.numel(); ++i) {
      const size_t g = size_t((i / q.cols) * q.groups() + (i % q.cols) / q.group_size);
      f.mutable_as<float>()[i] =
          float(efficient_fake(w.as<float>()[i], f16_to_f32(f32_to_f16(q.scales[g])), q.zeros[g], maxq));
    }
    fake.push_back(&f);
  }
  const std::vector<int32_t> in(toks.begin(), toks.begin() + T);
  std::vector<Vec> target = embed(m, in);
  test::reference_block(c, m.layers[0], target);
  auto loss = [&] {
    std::vector<Vec> x = embed(m, in);
    test::reference_block(c, fakeL, x);
    return naive_mse(x, target);
  };
  auto fd = [&](float& v) {
    const float v0 = v, h = 1e-3f;
    v = v0 + h;
    const double up = loss();
    v = v0 - h;
    const double down = loss();
    v = v0;
    return (up - down) / (2.0 * double(h));
  };
  auto adam_first = [](double p, double g, double lr) { return p - lr * g / (std::abs(g) + 1e-8); };
  for (size_t k = 0; k < layers.size(); ++k) {
    const CompressedTensor& q = layers[k];
    int64_t layer = 0;
    const Tensor& w = m.layers[0].*find_block_tensor(q.name, &layer)->member;
    std::vector<double> ds(q.scales.size()), dz(q.scales.size()), dw(size_t(w.numel()));
    for (int64_t i = 0; i < w.numel(); ++i) {
      const size_t g = size_t((i / q.cols) * q.groups() + (i % q.cols) / q.group_size);
      const double s = f16_to_f32(f32_to_f16(q.scales[g])), z = q.zeros[g];
      const double wi = w.as<float>()[i], dfake = fd(fake[k]->mutable_as<float>()[i]);
      const double code = std::nearbyint(wi / s) + z;
      if (code < 0 || code > maxq) {
        ds[g] += dfake * (std::clamp(code, 0.0, maxq) - z), dz[g] -= dfake * s;
      } else {
        dw[size_t(i)] = dfake, ds[g] += dfake * (std::nearbyint(wi / s) - wi / s);
      }
    }
    const CompressedTensor& got = r.quantized[k];
    ASSERT_EQ(got.name, q.name);
    int64_t checked = 0, code_differ = 0;
    for (size_t g = 0; g < ds.size(); ++g) {
      if (std::abs(ds[g]) < 1e-7) continue;  // a sign the differences cannot settle
      const float want = f16_to_f32(f32_to_f16(float(adam_first(q.scales[g], ds[g], 1e-3))));
      EXPECT_NEAR(got.scales[g], want, 1e-3 * std::abs(want)) << q.name << " group " << g;
      EXPECT_EQ(got.zeros[g], std::nearbyint(std::clamp(adam_first(q.zeros[g], dz[g], 1e-3), 0.0, maxq)));
      ++checked;
    }
    EXPECT_GT(checked, int64_t(ds.size()) / 2) << q.name;
    std::vector<uint8_t> codes(size_t(w.numel()));
    unpack_codes(got.codes.data(), codes.size(), got.bits, codes.data());
    for (int64_t i = 0; i < w.numel(); ++i) {
      const size_t g = size_t((i / q.cols) * q.groups() + (i % q.cols) / q.group_size);
      const double wi = adam_first(w.as<float>()[i], dw[size_t(i)], 5e-4);
      const double want = std::clamp(std::nearbyint(wi / got.scales[g]) + got.zeros[g], 0.0, maxq);
      code_differ += codes[size_t(i)] != uint8_t(want);
    }
    EXPECT_LE(code_differ, w.numel() / 100) << q.name;  // a rounding tie the f32 sums tip
  }
  for (const auto& [name, trained] : r.norms) {
    int64_t layer = 0;
    const BlockTensor* t = find_block_tensor(name, &layer);
    ASSERT_NE(t, nullptr) << name;
    Tensor& nw = fakeL.*t->member;
    for (int64_t i = 0; i < nw.numel(); ++i) {
      const double g = fd(nw.mutable_as<float>()[i]);
      if (std::abs(g) < 1e-7) continue;
      EXPECT_NEAR(trained.as<float>()[i], adam_first(nw.as<float>()[i], g, 5e-4), 1e-6)
          << name << " " << i;
    }
  }
}

// Two blocks trained for a few epochs: each block's validation error falls from where the
// compressed grids start, and the last one's final figure is what a naive pipeline
// measures — the uncompressed model's stream as the target, the stream of the packed
// (trained) first block as the input — on the same windows.
TEST(BlockAp, TrainsEachBlockOnTheQuantisedStreamAgainstTheUncompressedOne) {
  const LlamaConfig c = test::tiny_config();
  const LlamaModel m = test::random_llama(c, 21);
  const std::vector<int32_t> toks = test::random_tokens(400, c.vocab_size, 8);
  const auto layers = rtn_layers(m, 2, 8);
  BlockApOptions o;
  o.train_windows = 6, o.val_windows = 2, o.seq_len = 12, o.batch = 2, o.epochs = 4;
  o.quant_lr = 2e-3, o.weight_lr = 1e-3;
  const BlockApResult r = block_ap(m, layers, toks, o);
  ASSERT_EQ(r.blocks.size(), 2u);
  for (const BlockApBlock& b : r.blocks) {
    ASSERT_EQ(b.val_loss.size(), 4u);
    EXPECT_LT(b.val_loss.back(), 0.9 * b.start_val) << "block " << b.layer;
  }
  ASSERT_EQ(r.quantized.size(), layers.size());
  for (size_t i = 0; i < layers.size(); ++i)
    EXPECT_EQ(r.quantized[i].describe(), layers[i].describe());
  ASSERT_EQ(r.norms.size(), 4u);

  // The trained model: packed layers decoded, trained norms.
  LlamaModel q = m;
  for (int64_t l = 0; l < c.n_layers; ++l) q.layers[size_t(l)] = copy_layer(c, m.layers[size_t(l)]);
  for (const CompressedTensor& t : r.quantized) {
    int64_t l = 0;
    const BlockTensor* bt = find_block_tensor(t.name, &l);
    q.layers[size_t(l)].*bt->member = t.dequantize();
  }
  for (const auto& [name, t] : r.norms) {
    int64_t l = 0;
    const BlockTensor* bt = find_block_tensor(name, &l);
    q.layers[size_t(l)].*bt->member = t;
  }
  std::vector<int32_t> drawn;
  std::mt19937_64 sampler(o.seed);
  random_windows(toks, o.train_windows + o.val_windows, o.seq_len, sampler, drawn);
  double val = 0;
  for (int64_t w = o.train_windows; w < o.train_windows + o.val_windows; ++w) {
    const auto first = drawn.begin() + w * (o.seq_len + 1);
    const std::vector<int32_t> in(first, first + o.seq_len);
    std::vector<Vec> fp = embed(m, in), qs = embed(m, in);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      test::reference_block(c, m.layers[size_t(l)], fp);
      test::reference_block(c, q.layers[size_t(l)], qs);
    }
    val += naive_mse(qs, fp) / double(o.val_windows);
  }
  EXPECT_NEAR(r.blocks.back().val_loss.back(), val, 1e-3 * val);
}

// Stopped after the first block and resumed from what it had: the uninterrupted result.
TEST(BlockAp, ResumedAfterABlockEqualsTheUninterruptedRun) {
  const LlamaConfig c = test::tiny_config();
  const LlamaModel m = test::random_llama(c, 22);
  const std::vector<int32_t> toks = test::random_tokens(300, c.vocab_size, 9);
  const auto layers = rtn_layers(m, 3, 8);
  BlockApOptions o;
  o.train_windows = 4, o.val_windows = 2, o.seq_len = 10, o.epochs = 2, o.quant_lr = 1e-3;
  std::optional<BlockApResult> first_block;
  const BlockApResult whole = block_ap(m, layers, toks, o, {}, nullptr, [&](const BlockApResult& so_far) {
    if (!first_block) first_block = so_far;
  });
  ASSERT_TRUE(first_block);
  ASSERT_EQ(first_block->blocks.size(), 1u);
  int calls = 0;
  const BlockApResult resumed =
      block_ap(m, layers, toks, o, {}, nullptr, [&](const BlockApResult&) { ++calls; }, &*first_block);
  EXPECT_EQ(calls, 1);  // only the block that was left
  ASSERT_EQ(resumed.quantized.size(), whole.quantized.size());
  for (size_t i = 0; i < whole.quantized.size(); ++i) {
    EXPECT_EQ(resumed.quantized[i].codes, whole.quantized[i].codes) << whole.quantized[i].name;
    EXPECT_EQ(resumed.quantized[i].scales, whole.quantized[i].scales);
    EXPECT_EQ(resumed.quantized[i].zeros, whole.quantized[i].zeros);
  }
  ASSERT_EQ(resumed.norms.size(), whole.norms.size());
  for (size_t i = 0; i < whole.norms.size(); ++i)
    EXPECT_EQ(resumed.norms[i].second.to_f32(), whole.norms[i].second.to_f32());
  EXPECT_EQ(resumed.blocks.back().val_loss, whole.blocks.back().val_loss);
}

TEST(BlockAp, RefusesWhatItCannotTrainAndCancels) {
  const LlamaConfig c = test::tiny_config();
  const LlamaModel m = test::random_llama(c, 23);
  const std::vector<int32_t> toks = test::random_tokens(100, c.vocab_size, 1);
  auto layers = rtn_layers(m, 3, 8);
  BlockApOptions o;
  o.train_windows = 2, o.val_windows = 1, o.seq_len = 8;
  EXPECT_THROW(block_ap(m, {}, toks, o), Error);
  EXPECT_THROW(block_ap(m, layers, std::span(toks).first(8), o), Error);  // too short a text
  BlockApOptions bad = o;
  bad.batch = 0;
  EXPECT_THROW(block_ap(m, layers, toks, bad), Error);
  std::vector<CompressedTensor> dense = layers;
  dense[0] = dense_tensor(m.layers[0].wq, dense[0].name);
  EXPECT_THROW(block_ap(m, dense, toks, o), Error);
  std::vector<CompressedTensor> stranger = layers;
  stranger[0].name = "model.layers.9.self_attn.q_proj.weight";
  EXPECT_THROW(block_ap(m, stranger, toks, o), Error);
  std::vector<int32_t> outside = toks;
  for (int32_t& t : outside) t = int32_t(c.vocab_size);
  EXPECT_THROW(block_ap(m, layers, outside, o), Error);
  CancelToken cancel;
  int steps = 0;
  EXPECT_THROW(block_ap(m, layers, toks, o,
                        [&](const ProgressEvent&) {
                          if (++steps == 2) cancel.cancel();
                        },
                        &cancel),
               Cancelled);
  EXPECT_LE(steps, 3);
}
