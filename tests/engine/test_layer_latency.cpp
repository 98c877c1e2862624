// Per-layer decode latency (engine/search/layer_latency.h): one layer per
// weight shape is compressed and timed at each setting, the others of its shape
// share that time, and the model's weights are used as stored (a bf16 file's
// views stay views).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "engine/core/error.h"
#include "engine/eval/packed_llama.h"
#include "engine/io/model_file.h"
#include "engine/model/synth_model.h"
#include "engine/search/layer_latency.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;

namespace {

SensitivityTable scan(const LlamaModel& base, std::span<const int32_t> tokens) {
  SensitivityOptions so;
  so.settings = {scan_setting_from_name("w8"), scan_setting_from_name("w2")};
  so.windows = 1;
  so.window = 32;
  return SensitivityScan(base, "fp", tokens, so).run(nullptr);
}

}  // namespace

TEST(LayerLatency, OneLayerPerShapeIsTimedAndTheTableIsAdditive) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 23);
  const auto tokens = test::random_tokens(100, base.cfg.vocab_size, 10);
  const SensitivityTable t = scan(base, tokens);
  std::map<std::string, std::pair<int64_t, int64_t>> shape;
  for (const auto& [name, w] : base.named_tensors())
    if (w->ndim() == 2) shape[name] = {w->dim(0), w->dim(1)};  // norms have no second dim
  std::set<std::pair<int64_t, int64_t>> shapes;
  for (const std::string& l : t.layers) shapes.insert(shape.at(l));
  // The timer sees each shape once per setting; its answer names the shape and
  // the bits.
  std::vector<std::string> timed;
  const LayerLatencyTable lt = measure_layer_latency(
      base, t, {"w8", "w2"}, tokens, {}, {8, 4, 1}, [&](const CompressedTensor& w) {
        timed.push_back(w.name);
        return double(w.rows * 1000 + w.cols) + w.bits / 10.0;
      });
  EXPECT_EQ(timed.size(), 2 * shapes.size());
  for (const std::string& l : t.layers) {
    const auto [rows, cols] = shape.at(l);
    EXPECT_DOUBLE_EQ(lt.at(l, "w8"), double(rows * 1000 + cols) + 0.8) << l;
    EXPECT_DOUBLE_EQ(lt.cost()(l, "w2"), double(rows * 1000 + cols) + 0.2) << l;
  }
  // The first layer of each shape is the one timed (the earliest block).
  EXPECT_EQ(timed.front(), t.layers.front());
  ASSERT_EQ(lt.dense_ms.size(), t.layers.size());
  for (size_t l = 0; l < t.layers.size(); ++l) EXPECT_GT(lt.dense_ms[l], 0);
  EXPECT_GT(lt.model_ms_per_token, 0);
  EXPECT_GE(lt.rest_ms, 0);
  EXPECT_THROW(lt.at("nope", "w8"), Error);
  EXPECT_GT(time_packed_decode_gemv(pack_uncompressed(base.layers[0].wq, "q"), 3), 0);
  CompressedTensor dense = dense_tensor(base.layers[0].wq, "q");
  EXPECT_GT(time_packed_decode_gemv(dense, 3), 0);
  CompressedTensor broken = dense;  // a packed kernel refuses what it cannot read
  broken.coding = WeightCoding::Affine;
  broken.bits = 4;
  broken.group_size = broken.cols;
  EXPECT_THROW(time_packed_decode_gemv(broken, 1), Error);
}

// A bf16 model from its file (as `mcw synth` writes one): the uncompressed
// layers are timed on their bf16 views, and a calibrated setting works as a
// layer-local one does.
TEST(LayerLatency, Bf16ModelFromItsFile) {
  const auto dir = test::fresh_temp_dir();
  SynthOptions o;
  o.shape = "tiny";
  o.seed = 3;
  write_synth_model(plan_synth_model(o), (dir / "m").string());
  const ModelFile f = open_model_file((dir / "m").string());
  const LlamaModel base = load_llama(f);
  ASSERT_EQ(base.layers[0].wq.dtype(), DType::BF16);
  const auto tokens = test::random_tokens(200, base.cfg.vocab_size, 4);
  SensitivityTable t = scan(base, tokens);
  t.settings.push_back({"gptq4", "gptq", {{"bits", 4}, {"group_size", 32}}});
  CompressOptions co;
  co.calib_windows = 2, co.calib_window = 32;
  const LayerLatencyTable lt =
      measure_layer_latency(base, t, {"w8", "w2", "gptq4"}, tokens, co, {8, 4, 1});
  EXPECT_EQ(base.layers[0].wq.dtype(), DType::BF16);  // the base is untouched
  for (const std::string& l : t.layers)
    for (const char* s : {"w8", "w2", "gptq4"}) EXPECT_GT(lt.at(l, s), 0) << l << " " << s;
  for (double d : lt.dense_ms) EXPECT_GT(d, 0);
  EXPECT_GT(lt.model_ms_per_token, 0);
}

// The run store keeps a table for this machine: read back whole, refused when a layer or
// setting is missing, and invisible under another machine's key.
TEST(LayerLatency, StoredTableReadsBackOnThisMachine) {
  const LlamaModel base = test::random_llama(test::tiny_config(), 24);
  const auto tokens = test::random_tokens(100, base.cfg.vocab_size, 11);
  const SensitivityTable t = scan(base, tokens);
  double next = 1;
  const LayerLatencyTable lt =
      measure_layer_latency(base, t, {"w8", "w2"}, tokens, {}, {8, 4, 1},
                            [&](const CompressedTensor&) { return next += 1; });
  const auto dir = test::fresh_temp_dir();
  const auto store = RunStore::open((dir / "runs.db").string());
  EXPECT_FALSE(load_layer_latency(*store, "fp", t.layers, {"w8"}).has_value());
  store_layer_latency(*store, "fp", lt);
  const auto back = load_layer_latency(*store, "fp", t.layers, {"w8", "w2"});
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->ms, lt.ms);
  EXPECT_EQ(back->dense_ms, lt.dense_ms);
  EXPECT_EQ(back->model_ms_per_token, lt.model_ms_per_token);
  EXPECT_DOUBLE_EQ(back->rest_ms, lt.rest_ms);
  EXPECT_EQ(load_layer_latency(*store, "fp", t.layers, {"w2"})->ms.size(), t.layers.size());
  EXPECT_FALSE(load_layer_latency(*store, "fp", t.layers, {"w4"}).has_value());
  EXPECT_FALSE(load_layer_latency(*store, "other", t.layers, {"w8"}).has_value());
  // Another machine's entries (another key) are not this machine's table.
  store->put_sensitivity("fp2", {kModelLayer, kDenseSetting, "latency_ms@000000000000", 1.0});
  EXPECT_FALSE(load_layer_latency(*store, "fp2", {}, {}).has_value());
  EXPECT_EQ(latency_metric_key().rfind("latency_ms@", 0), 0u);
}
