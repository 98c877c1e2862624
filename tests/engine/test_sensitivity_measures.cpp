// The sensitivity scan's cached block inputs and its proxy measures, each against an
// independent computation: full reruns of the model, and layer / block outputs captured
// from llama_forward through its linear hook.
#include <gtest/gtest.h>

#include <random>

#include "engine/compress/calibrate.h"
#include "engine/eval/perplexity.h"
#include "engine/kernels/stored_matmul.h"
#include "engine/search/block_forward.h"
#include "engine/search/kl_meter.h"
#include "engine/search/sensitivity_scan.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;

namespace {

SensitivityOptions options(std::vector<std::string> names, SensitivityMeasure m) {
  SensitivityOptions o;
  o.settings.clear();
  for (const auto& n : names) o.settings.push_back(scan_setting_from_name(n));
  o.measure = m;
  o.windows = 3;
  o.window = 32;
  o.compress.calib_windows = 4;
  o.compress.calib_window = 24;
  return o;
}

LlamaModel one_layer_compressed(const LlamaModel& base, const std::string& layer,
                                const std::string& setting) {
  const Tensor* w = nullptr;
  for (const auto& [n, t] : base.named_tensors())
    if (n == layer) w = t;
  return compress_llama(base, scan_cell_recipe(scan_setting_from_name(setting), layer, w->dim(1)),
                        {}, {})
      .model;
}

const Tensor& weight(const LlamaLayer& L, LlamaLinear which) {
  switch (which) {
    case LlamaLinear::Q: return L.wq;
    case LlamaLinear::K: return L.wk;
    case LlamaLinear::V: return L.wv;
    case LlamaLinear::O: return L.wo;
    case LlamaLinear::Gate: return L.w_gate;
    case LlamaLinear::Up: return L.w_up;
    default: return L.w_down;
  }
}

// llama_forward over `window` with a hook that runs every linear as the model would and
// hands `seen` the input of (layer, which) and, after down_proj of `layer` added its
// output, the residual stream (the block's output).
void forward_watching(const LlamaModel& m, std::span<const int32_t> window, int64_t layer,
                      LlamaLinear which, std::vector<float>* input, std::vector<float>* block_out) {
  KVCache cache(m.cfg, int64_t(window.size()));
  std::vector<float> logits(window.size() * size_t(m.cfg.vocab_size));
  const LlamaLinearFn hook = [&](int64_t l, LlamaLinear w, const float* x, int64_t T, float* y,
                                 const float* bias, bool acc) {
    const Tensor& W = l < 0 ? m.lm_head() : weight(m.layers[size_t(l)], w);
    if (l == layer && w == which && input) input->insert(input->end(), x, x + T * W.dim(1));
    matmul_wt_stored(x, W, y, T, bias, acc);
    if (l == layer && w == LlamaLinear::Down && block_out)
      block_out->insert(block_out->end(), y, y + T * m.cfg.dim);
  };
  llama_forward(m, window, cache, logits.data(), nullptr, &hook);
}

}  // namespace

TEST(BlockForward, ReferenceAndCellsFromKeptInputsEqualFullReruns) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 21);
  const auto tokens = test::random_tokens(300, base.cfg.vocab_size, 8);
  const KlMeter plain(base, tokens, 32, 4);
  const BlockInputOptions keep;  // f32
  const KlMeter cached(base, tokens, 32, 4, nullptr, &keep);
  ASSERT_NE(cached.block_inputs(), nullptr);
  EXPECT_EQ(cached.block_inputs()->boundaries(), base.cfg.n_layers + 1);
  EXPECT_EQ(cached.block_inputs()->bytes(), uint64_t(3 * 128 * base.cfg.dim * 4));
  EXPECT_EQ(cached.measure_from_block(base, 0).kl, 0.0);
  EXPECT_EQ(cached.measure_from_block(base, 1).top1, 1.0);
  for (const char* layer : {"model.layers.0.self_attn.k_proj.weight", "model.layers.0.mlp.down_proj.weight",
                            "model.layers.1.self_attn.o_proj.weight", "model.layers.1.mlp.up_proj.weight"}) {
    const LlamaModel m = one_layer_compressed(base, layer, "w2");
    const KlMeasurement full = plain.measure(m);
    const int64_t block = layer[13] - '0';
    for (int64_t from = 0; from <= block; ++from) {  // any block at or before the layer's
      const KlMeasurement part = cached.measure_from_block(m, from);
      EXPECT_EQ(part.kl, full.kl) << layer << " from block " << from;
      EXPECT_EQ(part.perplexity, full.perplexity);
      EXPECT_EQ(part.top1, full.top1);
      EXPECT_EQ(part.scored, full.scored);
    }
    EXPECT_GT(full.kl, 0);
  }
  EXPECT_THROW(plain.measure_from_block(base, 0), Error);
}

TEST(SensitivityMeasures, KlCellsFromBlockInputsEqualFullReruns) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 22);
  const auto tokens = test::random_tokens(200, base.cfg.vocab_size, 9);
  SensitivityOptions o = options({"w4", "w2", "s50"}, SensitivityMeasure::Kl);
  const SensitivityTable fast = SensitivityScan(base, "fp", tokens, o).run(nullptr);
  o.reuse_block_inputs = false;
  const SensitivityTable full = SensitivityScan(base, "fp", tokens, o).run(nullptr);
  ASSERT_EQ(fast.cells.size(), full.cells.size());
  for (size_t i = 0; i < fast.cells.size(); ++i) {
    EXPECT_EQ(fast.cells[i].kl, full.cells[i].kl) << fast.cells[i].layer << " " << fast.cells[i].setting;
    EXPECT_EQ(fast.cells[i].perplexity, full.cells[i].perplexity);
    EXPECT_EQ(fast.cells[i].top1, full.cells[i].top1);
    EXPECT_EQ(fast.cells[i].bits, full.cells[i].bits);
  }
  EXPECT_EQ(fast.baseline_perplexity, full.baseline_perplexity);
  EXPECT_EQ(fast.measure, SensitivityMeasure::Kl);
}

TEST(SensitivityMeasures, LayerProxyEqualsTheOutputErrorOnCapturedInputs) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 23);
  const auto tokens = test::random_tokens(200, base.cfg.vocab_size, 10);
  const SensitivityOptions o = options({"w3", "s50"}, SensitivityMeasure::Layer);
  const SensitivityTable t = SensitivityScan(base, "fp", tokens, o).run(nullptr);
  EXPECT_EQ(t.measure, SensitivityMeasure::Layer);
  EXPECT_EQ(t.windows, 4);
  EXPECT_EQ(t.window, 24);
  const auto calib = calibration_windows(tokens, 4, 24);
  const struct {
    const char* layer;
    LlamaLinear which;
    int64_t block;
  } cases[] = {{"model.layers.0.self_attn.v_proj.weight", LlamaLinear::V, 0},
               {"model.layers.1.self_attn.o_proj.weight", LlamaLinear::O, 1},
               {"model.layers.1.mlp.down_proj.weight", LlamaLinear::Down, 1}};
  for (const auto& c : cases)
    for (const char* setting : {"w3", "s50"}) {
      // ‖(W − Ŵ)·x‖² / ‖W·x‖² over every input row the layer saw, in f64.
      std::vector<float> x;
      for (const auto& w : calib) forward_watching(base, w, c.block, c.which, &x, nullptr);
      const LlamaModel m = one_layer_compressed(base, c.layer, setting);
      const Tensor& W = weight(base.layers[size_t(c.block)], c.which);
      const Tensor& Q = weight(m.layers[size_t(c.block)], c.which);
      const int64_t rows = W.dim(0), cols = W.dim(1), n = int64_t(x.size()) / cols;
      double err = 0, norm = 0;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < rows; ++i) {
          double y = 0, yq = 0;
          for (int64_t j = 0; j < cols; ++j) {
            y += double(W.as<float>()[i * cols + j]) * x[size_t(r * cols + j)];
            yq += double(Q.as<float>()[i * cols + j]) * x[size_t(r * cols + j)];
          }
          err += (y - yq) * (y - yq), norm += y * y;
        }
      const SensitivityCell& cell = t.at(*t.layer_index(c.layer), *t.setting_index(setting));
      EXPECT_NEAR(cell.error, err / norm, 1e-4 * err / norm) << c.layer << " " << setting;
      EXPECT_GT(cell.error, 0);
      EXPECT_EQ(t.value(*t.layer_index(c.layer), *t.setting_index(setting)), cell.error);
    }
}

TEST(SensitivityMeasures, BlockProxyEqualsTheBlockOutputErrorOfFullForwards) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 24);
  const auto tokens = test::random_tokens(200, base.cfg.vocab_size, 11);
  const SensitivityOptions o = options({"w2"}, SensitivityMeasure::Block);
  const SensitivityTable t = SensitivityScan(base, "fp", tokens, o).run(nullptr);
  EXPECT_EQ(t.measure, SensitivityMeasure::Block);
  for (const char* layer : {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.gate_proj.weight"}) {
    const int64_t block = layer[13] - '0';
    const LlamaModel m = one_layer_compressed(base, layer, "w2");
    double err = 0, norm = 0;
    for (const EvalWindow& w : eval_windows(96, {32, 32})) {
      const auto span = std::span(tokens).subspan(size_t(w.begin), size_t(w.end - w.begin));
      std::vector<float> y, yq;
      forward_watching(base, span, block, LlamaLinear::Down, nullptr, &y);
      forward_watching(m, span, block, LlamaLinear::Down, nullptr, &yq);
      for (size_t i = 0; i < y.size(); ++i)
        err += (double(yq[i]) - y[i]) * (double(yq[i]) - y[i]), norm += double(y[i]) * y[i];
    }
    const SensitivityCell& cell = t.at(*t.layer_index(layer), 0);
    EXPECT_NEAR(cell.error, err / norm, 1e-12 * err / norm) << layer;
    EXPECT_GT(cell.error, 0);
  }
}

TEST(SensitivityMeasures, EachMeasureHasItsOwnCacheKeys) {
  const auto dir = test::fresh_temp_dir();
  const auto store = RunStore::open((dir / "s.mcwdb").string());
  const LlamaModel base = test::random_llama(test::tiny_config(), 25);
  const auto tokens = test::random_tokens(200, base.cfg.vocab_size, 12);
  for (SensitivityMeasure m : {SensitivityMeasure::Layer, SensitivityMeasure::Block, SensitivityMeasure::Kl})
    EXPECT_EQ(SensitivityScan(base, "fp", tokens, options({"w4"}, m)).run(store.get()).computed, 14)
        << measure_name(m);
  for (SensitivityMeasure m : {SensitivityMeasure::Layer, SensitivityMeasure::Block, SensitivityMeasure::Kl}) {
    const SensitivityTable again = SensitivityScan(base, "fp", tokens, options({"w4"}, m)).run(store.get());
    EXPECT_EQ(again.cached, 14) << measure_name(m);
    EXPECT_EQ(again.measure, m);
    EXPECT_GT(again.value(3, 0), 0);
  }
  const SensitivityScan layer(base, "fp", tokens, options({"w4"}, SensitivityMeasure::Layer));
  EXPECT_EQ(layer.metric_key("layer", 0).substr(0, 11), "layer@4x24#");
  const SensitivityScan block(base, "fp", tokens, options({"w4"}, SensitivityMeasure::Block));
  EXPECT_EQ(block.metric_key("block", 0).substr(0, 11), "block@3x32#");
  const SensitivityScan kl(base, "fp", tokens, options({"w4"}, SensitivityMeasure::Kl));
  EXPECT_NE(block.metric_key("bits", 0), kl.metric_key("bits", 0));
  EXPECT_EQ(measure_from_name("block"), SensitivityMeasure::Block);
  EXPECT_THROW(measure_from_name("mse"), Error);
}

TEST(SensitivityMeasures, MemoryEstimateStatesWhatTheScanHolds) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 26);
  const auto tokens = test::random_tokens(200, base.cfg.vocab_size, 13);
  SensitivityOptions o = options({"w4"}, SensitivityMeasure::Kl);
  const SensitivityMemory kl = SensitivityScan(base, "fp", tokens, o).memory_estimate();
  // 3 windows of 32 tokens laid end to end: each scores the 31 tokens after its first.
  EXPECT_EQ(kl.reference_logits, uint64_t(93 * base.cfg.vocab_size * 4));
  EXPECT_EQ(kl.block_inputs, uint64_t((base.cfg.n_layers + 1) * 96 * base.cfg.dim * 4));
  // A model built in memory owns all its tensors: a cell holds a copy of them.
  EXPECT_GE(kl.per_cell, base.parameter_count() * 4);
  o.measure = SensitivityMeasure::Layer;
  const SensitivityMemory layer = SensitivityScan(base, "fp", tokens, o).memory_estimate();
  EXPECT_EQ(layer.reference_logits, 0u);
  EXPECT_EQ(layer.block_inputs, 0u);
  EXPECT_GT(layer.statistics, uint64_t(base.cfg.hidden_dim * base.cfg.hidden_dim * 8));
  o.max_parallel = 3;
  o.memory_budget = uint64_t(1) << 40;
  EXPECT_EQ(SensitivityScan(base, "fp", tokens, o).memory_estimate().parallel, 3);
  o.memory_budget = 1;
  EXPECT_EQ(SensitivityScan(base, "fp", tokens, o).memory_estimate().parallel, 1);
}
