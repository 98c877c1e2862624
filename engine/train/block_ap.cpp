#include "engine/train/block_ap.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numbers>
#include <random>

#include "engine/core/error.h"
#include "engine/kernels/ops.h"
#include "engine/model/llama_tensors.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/optimizer.h"
#include "engine/train/qat.h"
#include "engine/train/streamed_student.h"  // packed_by_name
#include "engine/train/trainer.h"           // random_windows

namespace mcw {

BlockApOptions block_ap_paper_options() {
  BlockApOptions o;
  o.train_windows = 4096, o.val_windows = 64, o.seq_len = 2048;
  return o;
}

namespace {

void check_options(const BlockApOptions& o) {
  if (o.train_windows < 1 || o.val_windows < 0 || o.seq_len < 1 || o.batch < 1 || o.epochs < 0)
    throw Error("", "Block-AP needs at least one training window of at least one token, a batch "
                    "of at least one window and no negative count");
  if (o.quant_lr < 0 || o.weight_lr > 1 || o.quant_lr > 1 || o.min_lr_factor < 1 ||
      o.weight_decay < 0)
    throw Error("", "Block-AP's learning rates must be in [0, 1], min_lr_factor at least 1 and "
                    "the weight decay not negative");
}

// Block l of `m` with f32 tensors of its own (the model's may be mapped, in bf16).
LlamaLayer f32_block(const LlamaModel& m, int64_t l) {
  LlamaLayer L = m.layers[size_t(l)];
  for (const BlockTensor& t : llama_block_tensors())
    if (t.present(m.cfg)) L.*t.member = (L.*t.member).f32_copy();
  return L;
}

// Runs windows [first, first + n) of a stream ([windows · T, D]) through block L in place,
// `batch` windows at a time.
struct Streams {
  const LlamaConfig& c;
  std::vector<float> inv_freq;
  int64_t T, batch;
  LayerActivations act;
  std::vector<float> x;

  void run(const LlamaLayer& L, std::vector<float>& stream, int64_t first, int64_t n,
           const CancelToken* cancel) {
    const int64_t D = c.dim;
    for (int64_t w = first; w < first + n; w += batch) {
      if (cancel) cancel->throw_if_cancelled();
      const int64_t B = std::min(batch, first + n - w);
      float* p = stream.data() + w * T * D;
      x.assign(p, p + B * T * D);
      llama_block_forward(c, L, B, T, inv_freq.data(), x, act);
      std::copy(x.begin(), x.end(), p);
    }
  }
  // The mean squared error of block L's output on windows [w, w + B) of `in` against
  // `target`'s, leaving the output in x and, with dy, the error's gradient in *dy.
  double mse(const LlamaLayer& L, const std::vector<float>& in, const std::vector<float>& target,
             int64_t w, int64_t B, std::vector<float>* dy) {
    const int64_t D = c.dim, n = B * T * D;
    const float* p = in.data() + w * T * D;
    const float* t = target.data() + w * T * D;
    x.assign(p, p + n);
    llama_block_forward(c, L, B, T, inv_freq.data(), x, act);
    double sum = 0;
    if (dy) dy->resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      const double e = double(x[size_t(i)]) - double(t[i]);
      sum += e * e;
      if (dy) (*dy)[size_t(i)] = float(2.0 * e / double(n));
    }
    return sum / double(n);
  }
  // The mean over batches of the batch MSE on windows [first, first + n).
  double mean_mse(const LlamaLayer& L, const std::vector<float>& in,
                  const std::vector<float>& target, int64_t first, int64_t n) {
    double sum = 0;
    int64_t batches = 0;
    for (int64_t w = first; w < first + n; w += batch, ++batches)
      sum += mse(L, in, target, w, std::min(batch, first + n - w), nullptr);
    return batches ? sum / double(batches) : 0.0;
  }
};

// A cosine from lr to lr / factor over `total` iterations (CosineAnnealingLR's closed form):
// the rate of iteration t, 0-based.
double cosine_lr(double lr, double factor, int64_t t, int64_t total) {
  const double min = lr / factor;
  return min + (lr - min) * (1 + std::cos(std::numbers::pi * double(t) / double(total))) / 2;
}

std::span<float> span_of(Tensor& t) { return {t.mutable_as<float>(), size_t(t.numel())}; }

void fill_zero(const LlamaConfig& c, LlamaLayer& G) {
  for (const BlockTensor& t : llama_block_tensors())
    if (t.present(c)) std::ranges::fill(span_of(G.*t.member), 0.0f);
}

// One block's trainables: its quantised linears (latent weights and grids), where their
// fake-quantised weights live in the block, and its norms.
struct TrainedBlock {
  LlamaLayer L;  // f32: fake-quantised linears, trainable norms, the frozen rest
  std::vector<QatLayer> qat;
  std::vector<Tensor LlamaLayer::*> member;
  std::vector<Tensor> dlatent;
  std::vector<std::vector<float>> dscales, dzeros;

  void apply() {
    for (size_t i = 0; i < qat.size(); ++i) qat_fake_quantize(qat[i], L.*member[i]);
  }
};

}  // namespace

BlockApResult block_ap(const LlamaModel& teacher, std::span<const CompressedTensor> layers,
                       std::span<const int32_t> tokens, const BlockApOptions& o,
                       const ProgressFn& progress, const CancelToken* cancel,
                       const BlockApBlockFn& on_block, const BlockApResult* resume) {
  check_options(o);
  const LlamaConfig& c = teacher.cfg;
  const int64_t T = o.seq_len, D = c.dim, n_train = o.train_windows, n = n_train + o.val_windows;
  if (layers.empty()) throw Error("", "Block-AP needs at least one quantised layer");
  if (int64_t(tokens.size()) < T + 1)
    throw Error("", "Block-AP needs at least " + std::to_string(T + 1) +
                        " tokens of calibration text, got " + std::to_string(tokens.size()));
  const auto by_name = packed_by_name(teacher, layers, "");
  int min_bits = 16;
  for (const CompressedTensor& l : layers) {
    if (l.coding != WeightCoding::Affine)
      throw Error(l.name, "Block-AP trains affine (group-wise) quantised layers only");
    min_bits = std::min(min_bits, l.bits);
  }
  const double weight_lr = o.weight_lr >= 0 ? o.weight_lr : min_bits <= 2 ? 2e-5 : 1e-5;

  // The calibration windows (T + 1 tokens drawn, the first T used: split_training_windows
  // checks the tokens and that the block's backward can train this model).
  std::vector<int32_t> drawn, inputs, unused;
  std::mt19937_64 sampler(o.seed);
  random_windows(tokens, n, T, sampler, drawn);
  split_training_windows(teacher, drawn, n, T, inputs, unused);
  std::vector<float> fp(size_t(n * T * D));
  for (int64_t w = 0; w < n; ++w)
    llama_embed(teacher, {inputs.data() + w * T, size_t(T)}, fp.data() + w * T * D);
  std::vector<float> quant = fp;  // the first block's inputs are the same

  Streams s{c, rope_inv_freq(c), T, o.batch, {}, {}};
  const int64_t per_epoch = (n_train + o.batch - 1) / o.batch, total = o.epochs * per_epoch;
  const AdamWOptions adam{0.9, 0.999, 1e-8, o.weight_decay};  // torch.optim.AdamW's defaults
  BlockApResult r;
  const size_t done = resume ? resume->blocks.size() : 0;
  std::map<std::string, const CompressedTensor*> resumed;
  std::map<std::string, const Tensor*> resumed_norms;
  if (resume) {
    if (done > size_t(c.n_layers))
      throw Error("", "the stopped Block-AP run has more blocks than the model");
    for (const CompressedTensor& q : resume->quantized) resumed[q.name] = &q;
    for (const auto& [name, t] : resume->norms) resumed_norms[name] = &t;
  }
  // What the stopped run kept of `name` (mcw::Error when it lacks it).
  auto kept = [](const auto& map, const std::string& name) {
    const auto it = map.find(name);
    if (it == map.end()) throw Error("", "the stopped Block-AP run lacks " + name);
    return it->second;
  };
  BlockGradients scratch;
  std::vector<float> dy;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    if (cancel) cancel->throw_if_cancelled();
    const auto start = std::chrono::steady_clock::now();
    LlamaLayer teacher_block = f32_block(teacher, l);
    s.run(teacher_block, fp, 0, n, cancel);  // the targets, and the next block's fp inputs

    TrainedBlock b{teacher_block, {}, {}, {}, {}, {}};
    std::vector<std::pair<std::string, Tensor LlamaLayer::*>> norms;
    for (const BlockTensor& t : llama_block_tensors()) {
      if (!t.present(c)) continue;
      const std::string name = block_tensor_name(l, t);
      if (t.role == BlockRole::AttnNorm || t.role == BlockRole::FfnNorm) {
        b.L.*t.member = (b.L.*t.member).f32_copy();  // trained: its own copy
        norms.push_back({name, t.member});
      } else if (const auto p = by_name.find(name); p != by_name.end() && t.linear()) {
        b.qat.push_back(qat_layer(*p->second, teacher_block.*t.member, false,
                                  QatRule::EfficientQat));
        b.member.push_back(t.member);
        b.L.*t.member = Tensor::zeros(DType::F32, (b.L.*t.member).shape());
      }
    }

    BlockApBlock stats;
    stats.layer = l;
    if (size_t(l) < done) {  // trained before the stop: run the streams through it as it was
      for (size_t i = 0; i < b.qat.size(); ++i) {
        const CompressedTensor* q = kept(resumed, b.qat[i].scheme.name);
        if (q->describe() != b.qat[i].scheme.describe())
          throw Error("", "the stopped Block-AP run's " + q->name + " is not the layer given");
        b.L.*b.member[i] = q->dequantize();
      }
      if (!b.qat.empty())
        for (const auto& [name, m] : norms) {
          const Tensor* t = kept(resumed_norms, name);
          if (t->shape() != (b.L.*m).shape())
            throw Error("", "the stopped Block-AP run's " + name + " has another shape");
          b.L.*m = t->f32_copy();
        }
      stats = resume->blocks[size_t(l)];
    } else if (!b.qat.empty()) {
      b.apply();
      stats.start_val = s.mean_mse(b.L, quant, fp, n_train, o.val_windows);
      // Two groups as the reference's AdamW has them: the grids (scales, zero points) and the
      // weights (latent weights, norms).
      LlamaLayer G = zeros_like(c, b.L);
      std::vector<ParamRef> qparams, wparams;
      b.dlatent.reserve(b.qat.size());
      for (QatLayer& q : b.qat) {
        b.dlatent.push_back(Tensor::zeros(DType::F32, q.latent.shape()));
        b.dscales.emplace_back(q.scales.size());
        b.dzeros.emplace_back(q.zeros.size());
        wparams.push_back({span_of(q.latent), span_of(b.dlatent.back()), true});
        qparams.push_back({q.scales, b.dscales.back(), true});
        if (!q.zeros.empty()) qparams.push_back({q.zeros, b.dzeros.back(), true});
      }
      for (const auto& [name, m] : norms) wparams.push_back({span_of(b.L.*m), span_of(G.*m), true});
      AdamW qopt(adam), wopt(adam);
      int64_t t = 0;
      for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
        double sum = 0;
        for (int64_t w = 0; w < n_train; w += o.batch, ++t) {
          if (cancel) cancel->throw_if_cancelled();
          const int64_t B = std::min(o.batch, n_train - w);
          b.apply();
          sum += s.mse(b.L, quant, fp, w, B, &dy);
          fill_zero(c, G);
          llama_block_backward(c, b.L, s.act, B, T, s.inv_freq.data(), dy, G, scratch);
          for (size_t i = 0; i < b.qat.size(); ++i) {
            std::ranges::fill(span_of(b.dlatent[i]), 0.0f);
            std::fill(b.dscales[i].begin(), b.dscales[i].end(), 0.0f);
            std::fill(b.dzeros[i].begin(), b.dzeros[i].end(), 0.0f);
            qat_gradients(b.qat[i], G.*b.member[i], b.dlatent[i], b.dscales[i], b.dzeros[i]);
          }
          qopt.step(qparams, cosine_lr(o.quant_lr, o.min_lr_factor, t, total));
          wopt.step(wparams, cosine_lr(weight_lr, o.min_lr_factor, t, total));
          for (QatLayer& q : b.qat)  // a grid step stays positive (the reference clamps at 1e-4)
            for (float& sc : q.scales) sc = std::max(sc, 1e-4f);
          report(progress, "block-ap", "block " + std::to_string(l),
                 (double(l) + double(t + 1) / double(total)) / double(c.n_layers));
        }
        stats.train_loss.push_back(sum / double(per_epoch));
        b.apply();
        stats.val_loss.push_back(s.mean_mse(b.L, quant, fp, n_train, o.val_windows));
      }
      // Packed on the learnt grids; the quantised stream then runs the packed block.
      for (size_t i = 0; i < b.qat.size(); ++i) {
        r.quantized.push_back(qat_pack(b.qat[i]));
        b.L.*b.member[i] = r.quantized.back().dequantize();
      }
      for (const auto& [name, m] : norms) r.norms.push_back({name, b.L.*m});
    }
    if (size_t(l) < done) {
      for (const QatLayer& q : b.qat) r.quantized.push_back(*kept(resumed, q.scheme.name));
      for (const auto& [name, m] : norms)
        if (!b.qat.empty()) r.norms.push_back({name, b.L.*m});
    }
    s.run(b.L, quant, 0, n, cancel);
    stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.blocks.push_back(std::move(stats));
    report(progress, "block-ap", "block " + std::to_string(l), double(l + 1) / double(c.n_layers));
    if (on_block && size_t(l) >= done) on_block(r);
  }
  return r;
}

BlockApCost block_ap_cost(const ModelShape& m, const BlockApOptions& o) {
  const double L = double(std::max<int64_t>(m.n_layers, 1)), D = double(m.dim);
  const double T = double(o.seq_len), n = double(o.train_windows + o.val_windows);
  double block = 0;  // weights of one block's linears
  for (const LinearShape& l : m.linears) block += double(l.rows * l.cols);
  block /= L;
  const double N = double(o.batch) * T;
  const double per_row = 6.0 * D + 2.0 * double(m.q_dim + m.kv_dim) + 4.0 * double(m.hidden_dim);
  const double acts = N * per_row + double(o.batch) * double(m.n_heads) * T * T;
  // The two streams; per weight of the block its teacher's decode, the latent and
  // fake-quantised copies, two gradients (through the block, through the quantiser) and
  // AdamW's two moments, and a layer's decode while packing (one more, measured at the
  // Llama-3-8B shape: 6.82 GiB anonymous for 5 windows of 64 tokens); a batch's activations
  // and their gradients.
  const double words = 2.0 * n * T * D + 8.0 * block + 2.0 * acts + 2.0 * N * D;
  BlockApCost cost;
  cost.bytes = uint64_t(4.0 * words);
  const double steps = double(o.epochs) * std::ceil(double(o.train_windows) / double(o.batch));
  // Per step the block's forward and backward (6 FLOPs per weight and row); per block the
  // two streams and the validations (2 per weight and row).
  cost.flops = L * block * (6.0 * steps * N + 2.0 * n * T * (2.0 + double(o.epochs) + 1.0));
  return cost;
}

}  // namespace mcw
