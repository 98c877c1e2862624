// The sensitivity scan and its KL meter, against compress_llama + evaluate run by hand.
#include <gtest/gtest.h>

#include <atomic>
#include <random>

#include "engine/core/error.h"
#include "engine/eval/perplexity.h"
#include "engine/search/kl_meter.h"
#include "engine/search/sensitivity_scan.h"
#include "cancel_latency.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;

namespace {

Recipe by_hand(const std::string& yaml) { return parse_recipe(yaml, "by hand"); }

SensitivityOptions small_options(std::vector<std::string> names, int64_t windows = 3) {
  SensitivityOptions o;
  o.settings.clear();
  for (const auto& n : names) o.settings.push_back(scan_setting_from_name(n));
  o.windows = windows;
  o.window = 32;
  return o;
}

}  // namespace

TEST(KlMeter, EqualsEvaluateWithABaseline) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 11);
  const auto tokens = test::random_tokens(300, base.cfg.vocab_size, 3);
  const CompressionResult c = compress_llama(
      base, by_hand("stages:\n  - algorithm: rtn\n    bits: 2\n    group_size: 0\n"), {}, {});
  const KlMeter meter(base, tokens, 32, 4);
  EXPECT_EQ(meter.window_count(), 4);
  EXPECT_EQ(meter.tokens().size(), 128u);
  const KlMeasurement m = meter.measure(c.model);
  const EvalResult e = evaluate(c.model, std::span(tokens).first(128), {32, 32}, &base);
  EXPECT_EQ(m.scored, e.scored);
  EXPECT_DOUBLE_EQ(m.kl, e.kl);
  EXPECT_DOUBLE_EQ(m.perplexity, e.perplexity);
  EXPECT_DOUBLE_EQ(m.top1, e.top1);
  EXPECT_GT(m.kl, 0);
  // Subsets of windows combine to the whole, weighted by their scored tokens.
  const std::vector<int64_t> a = {0, 2}, b = {1, 3};
  const KlMeasurement ma = meter.measure(c.model, a), mb = meter.measure(c.model, b);
  EXPECT_EQ(ma.scored + mb.scored, m.scored);
  EXPECT_NEAR((ma.kl * double(ma.scored) + mb.kl * double(mb.scored)) / double(m.scored), m.kl,
              1e-12 * m.kl);
  // The reference against itself.
  EXPECT_EQ(meter.measure(base).kl, 0.0);
  EXPECT_EQ(meter.measure(base).top1, 1.0);
  // A short text gives fewer windows; a one-token text none at all.
  EXPECT_EQ(KlMeter(base, std::span(tokens).first(40), 32, 8).window_count(), 2);
  EXPECT_THROW(KlMeter(base, std::span(tokens).first(1), 32, 8), Error);
  EXPECT_THROW(KlMeter(base, tokens, 65, 8), Error);  // beyond the context
}

TEST(SensitivityScan, SettingNames) {
  const ScanSetting w = scan_setting_from_name("w3g64");
  EXPECT_EQ(w.algorithm, "rtn");
  EXPECT_EQ(w.params["bits"], 3);
  EXPECT_EQ(w.params["group_size"], 64);
  EXPECT_EQ(scan_setting_from_name("w8").params["group_size"], 128);
  const ScanSetting s = scan_setting_from_name("s75");
  EXPECT_EQ(s.algorithm, "magnitude");
  EXPECT_DOUBLE_EQ(s.params["sparsity"].get<double>(), 0.75);
  for (const char* bad : {"w5", "w", "w4g48", "s0", "s100", "x4", "s5x", "w44444"})
    EXPECT_THROW(scan_setting_from_name(bad), Error) << bad;
  const auto d = default_scan_settings();
  ASSERT_EQ(d.size(), 7u);
  EXPECT_EQ(d[0].name, "w8");
  EXPECT_EQ(d[6].name, "s75");
  EXPECT_TRUE(is_quantization_setting(d[1]));
  EXPECT_FALSE(is_quantization_setting(d[5]));
}

TEST(SensitivityScan, CellRecipeFitsTheGroupToTheLayer) {
  const ScanSetting w4 = scan_setting_from_name("w4");
  EXPECT_EQ(scan_cell_recipe(w4, "x", 256).stages[0].params["group_size"], 128);
  EXPECT_EQ(scan_cell_recipe(w4, "x", 96).stages[0].params["group_size"], 32);
  EXPECT_EQ(scan_cell_recipe(w4, "x", 40).stages[0].params["group_size"], 0);
  const Recipe r = scan_cell_recipe(w4, "model.layers.0.mlp.up_proj.weight", 64);
  ASSERT_EQ(r.stages.size(), 1u);
  EXPECT_EQ(r.stages[0].targets, std::vector<std::string>{"model.layers.0.mlp.up_proj.weight"});
  EXPECT_EQ(r.stages[0].params["symmetric"], false);
  EXPECT_EQ(r.stages[0].params["group_size"], 64);
  EXPECT_THROW(scan_cell_recipe({"bad", "frobnicate", {}}, "x", 64), Error);
  EXPECT_THROW(scan_cell_recipe({"h", "heads", {}}, "x", 64), Error);
  EXPECT_THROW(scan_cell_recipe({"b", "rtn", {{"bits", 5}}}, "x", 64), Error);
}

TEST(SensitivityScan, CellsEqualCompressingOneLayerByHand) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 12);
  const auto tokens = test::random_tokens(200, base.cfg.vocab_size, 4);
  std::vector<std::string> seen;
  SensitivityOptions o = small_options({"w4", "w2", "s50"});
  o.on_cell = [&](const SensitivityCell& c) { seen.push_back(c.layer + "|" + c.setting); };
  SensitivityScan scan(base, "fp", tokens, o);
  const SensitivityTable t = scan.run(nullptr);
  ASSERT_EQ(t.layers.size(), 14u);  // 2 blocks x 7 linears
  EXPECT_EQ(t.layers[0], "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(t.cells.size(), 14u * 3);
  EXPECT_EQ(t.computed, 42);
  EXPECT_EQ(t.cached, 0);
  EXPECT_EQ(seen.size(), 42u);
  EXPECT_EQ(t.windows, 3);
  EXPECT_GT(t.baseline_perplexity, 1);

  // q_proj (32 inputs): groups of 32; down_proj (40 inputs): per output channel.
  const char* q = "model.layers.0.self_attn.q_proj.weight";
  const char* down = "model.layers.1.mlp.down_proj.weight";
  const struct {
    const char* layer;
    const char* setting;
    std::string stage;
  } cases[] = {{q, "w4", "algorithm: rtn\n    bits: 4\n    group_size: 32"},
               {down, "w2", "algorithm: rtn\n    bits: 2\n    group_size: 0"},
               {down, "s50", "algorithm: magnitude\n    sparsity: 0.5"}};
  for (const auto& c : cases) {
    const Recipe r =
        by_hand(std::string("stages:\n  - ") + c.stage + "\n    targets: [" + c.layer + "]\n");
    const CompressionResult res = compress_llama(base, r, {}, {});
    const EvalResult e = evaluate(res.model, std::span(tokens).first(96), {32, 32}, &base);
    const SensitivityCell& cell = t.at(*t.layer_index(c.layer), *t.setting_index(c.setting));
    EXPECT_DOUBLE_EQ(cell.kl, e.kl) << c.layer << " " << c.setting;
    EXPECT_DOUBLE_EQ(cell.perplexity, e.perplexity);
    EXPECT_DOUBLE_EQ(cell.top1, e.top1);
    ASSERT_EQ(res.layers.size(), 1u);
    EXPECT_EQ(cell.bits, res.layers[0].tensor.storage_bits());
    EXPECT_GT(cell.kl, 0);
  }
  // Fewer bits hurt more, on every layer of this model.
  for (size_t l = 0; l < t.layers.size(); ++l)
    EXPECT_LT(t.at(l, 0).kl, t.at(l, 1).kl) << t.layers[l];
}

TEST(SensitivityScan, SecondScanReadsTheStore) {
  const auto dir = test::fresh_temp_dir();
  const auto store = RunStore::open((dir / "s.mcwdb").string());
  const LlamaModel base = test::random_llama(test::tiny_config(), 13);
  const auto tokens = test::random_tokens(200, base.cfg.vocab_size, 5);
  const SensitivityTable a =
      SensitivityScan(base, "fp1", tokens, small_options({"w8", "w3"})).run(store.get());
  EXPECT_EQ(a.computed, 28);
  int calls = 0;
  SensitivityOptions o = small_options({"w8", "w3"});
  o.on_cell = [&](const SensitivityCell& c) { calls += c.cached; };
  const SensitivityTable b = SensitivityScan(base, "fp1", tokens, o).run(store.get());
  EXPECT_EQ(b.computed, 0);
  EXPECT_EQ(b.cached, 28);
  EXPECT_EQ(calls, 28);
  for (size_t i = 0; i < a.cells.size(); ++i) {
    EXPECT_EQ(b.cells[i].kl, a.cells[i].kl);
    EXPECT_EQ(b.cells[i].perplexity, a.cells[i].perplexity);
    EXPECT_EQ(b.cells[i].bits, a.cells[i].bits);
    EXPECT_TRUE(b.cells[i].cached);
  }
  // What was measured is in the key: another model, window count, text or setting recomputes.
  EXPECT_EQ(SensitivityScan(base, "fp2", tokens, small_options({"w8"})).run(store.get()).computed,
            14);
  EXPECT_EQ(
      SensitivityScan(base, "fp1", tokens, small_options({"w8"}, 2)).run(store.get()).computed, 14);
  auto other = tokens;
  other[5] = (other[5] + 1) % int32_t(base.cfg.vocab_size);
  EXPECT_EQ(SensitivityScan(base, "fp1", other, small_options({"w8"})).run(store.get()).computed,
            14);
  SensitivityOptions renamed = small_options({"w8"});
  renamed.settings[0].params["symmetric"] = true;  // same name, another setting
  EXPECT_EQ(SensitivityScan(base, "fp1", tokens, renamed).run(store.get()).computed, 14);
  // ... and the first scan is still read back whole.
  EXPECT_EQ(
      SensitivityScan(base, "fp1", tokens, small_options({"w8", "w3"})).run(store.get()).cached,
      28);
  const SensitivityScan s(base, "fp1", tokens, small_options({"w8"}));
  EXPECT_EQ(s.metric_key("kl", 0).substr(0, 8), "kl@3x32#");
  EXPECT_EQ(s.metric_key("kl", 0).size(), 8u + 12u);
}

TEST(SensitivityScan, CancelKeepsFinishedCells) {
  const auto dir = test::fresh_temp_dir();
  const auto store = RunStore::open((dir / "s.mcwdb").string());
  const LlamaModel base = test::random_llama(test::tiny_config(), 14);
  const auto tokens = test::random_tokens(200, base.cfg.vocab_size, 6);
  CancelToken cancel;
  SensitivityOptions o = small_options({"w4", "w2"});
  o.max_parallel = 1;
  int cells = 0;
  o.on_cell = [&](const SensitivityCell&) {
    if (++cells == 3) cancel.cancel();
  };
  EXPECT_THROW(SensitivityScan(base, "fp", tokens, o).run(store.get(), {}, &cancel), Cancelled);
  EXPECT_GE(cells, 3);
  EXPECT_LT(cells, 28);
  const SensitivityTable t =
      SensitivityScan(base, "fp", tokens, small_options({"w4", "w2"})).run(store.get());
  EXPECT_EQ(t.cached, cells);
  EXPECT_EQ(t.cached + t.computed, 28);
}

TEST(SensitivityScan, RejectsBadSettings) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 15);
  const auto tokens = test::random_tokens(100, base.cfg.vocab_size, 7);
  SensitivityOptions dup = small_options({"w4", "w4"});
  EXPECT_THROW(SensitivityScan(base, "fp", tokens, dup), Error);
  SensitivityOptions none = small_options({});
  EXPECT_THROW(SensitivityScan(base, "fp", tokens, none), Error);
  EXPECT_THROW(SensitivityScan(base, "fp", std::span(tokens).first(1), small_options({"w4"})),
               Error);
}

// A scan stops soon after a cancel in its middle: within a fifth of the time it took to get
// there (the same run, so load from other tests slows both alike). Each cell's windows run
// inside the KL meter's run_cancellable.
TEST(SensitivityScan, CancelStopsSoonAfterTheCancel) {
  LlamaConfig c = test::tiny_config(8, 8);
  c.dim = 768, c.head_dim = 96, c.hidden_dim = 3072, c.n_layers = 1;
  c.vocab_size = 256, c.max_seq_len = 256;
  const LlamaModel base = test::random_llama(c, 16);
  const auto tokens = test::random_tokens(2048, c.vocab_size, 17);
  SensitivityOptions o = small_options({"w4"}, 4);
  o.window = 256;
  CancelToken cancel;
  std::atomic<int> cells{0};
  o.on_cell = [&](const SensitivityCell&) { ++cells; };
  const test::CancelLatency t = test::measure_cancel(
      cancel, [&](double) { return cells >= 3; },  // of 7 cells
      [&] { SensitivityScan(base, "fp", tokens, o).run(nullptr, {}, &cancel); });
  EXPECT_GT(t.before, 0.1);  // there was work to stop
  EXPECT_LT(t.latency, 0.2 * t.before) << t.before << " s to get to the third cell";
  RecordProperty("seconds_to_third_cell", std::to_string(t.before));
  RecordProperty("cancel_latency_seconds", std::to_string(t.latency));
}
