// Streaming compression: blocks written as they finish (StreamedLlamaWriter) give exactly
// the model and packed layers of an in-memory run, for single- and multi-stage recipes
// and with the reuse of o/down inputs switched off; calibration activations spilled to a
// scratch file or kept in bf16 behave as documented.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "engine/compress/activation_store.h"
#include "engine/compress/calibrate.h"
#include "engine/compress/compress_llama.h"
#include "engine/export/packed_safetensors.h"
#include "engine/export/streamed_llama_writer.h"
#include "engine/core/half.h"
#include "engine/model/llama_model.h"
#include "compress_test_util.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;

namespace {

void expect_same_tensor(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.shape(), b.shape()) << name;
  const std::vector<float> x = a.to_f32(), y = b.to_f32();
  ASSERT_EQ(std::memcmp(x.data(), y.data(), x.size() * 4), 0) << name;
}

void expect_streamed_equals_in_memory(const std::string& yaml) {
  const auto dir = test::fresh_temp_dir();
  const LlamaModel base = test::random_llama(test::compress_config(3), 3);
  const Recipe recipe = parse_recipe(yaml, "test.yaml");
  const auto calib = test::random_tokens(600, 4);
  CompressOptions o;
  o.calib_windows = 5, o.calib_window = 40;
  const CompressionResult whole = compress_llama(base, recipe, calib, o);

  StreamedLlamaWriter writer(dir.string(), DType::F32);
  CompressOptions so = o;
  std::vector<int64_t> seen;
  so.block_done = [&](const BlockDone& d, CompressionResult& r) {
    if (d.last()) seen.push_back(d.layer);
    writer.block_done(d, r);
  };
  CompressionResult streamed = compress_llama(base, recipe, calib, so);
  writer.finish(streamed);
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(streamed.storage_bits, whole.storage_bits);
  // The result's weights are views of the written shards, equal to the in-memory run's.
  const auto a = whole.model.named_tensors();
  const auto b = streamed.model.named_tensors();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (b[i].second->ndim() == 2) {
      EXPECT_FALSE(b[i].second->writable()) << b[i].first;
    }
    expect_same_tensor(*a[i].second, *b[i].second, a[i].first);
  }
  // The directory loads back as the same model, and packed.safetensors holds every layer.
  const LlamaModel back = load_llama(dir.string());
  const auto c = back.named_tensors();
  for (size_t i = 0; i < a.size(); ++i) expect_same_tensor(*a[i].second, *c[i].second, a[i].first);
  const auto packed = read_packed_safetensors((dir / kPackedFileName).string());
  ASSERT_EQ(packed.size(), whole.layers.size());
  for (size_t i = 0; i < packed.size(); ++i) {
    EXPECT_EQ(packed[i].name, whole.layers[i].tensor.name);
    expect_same_tensor(packed[i].dequantize(), whole.layers[i].tensor.dequantize(), packed[i].name);
    EXPECT_EQ(streamed.layers[i].storage_bits, whole.layers[i].tensor.storage_bits());
    EXPECT_TRUE(streamed.layers[i].tensor.codes.empty());  // dropped once written
  }
}

}  // namespace

TEST(StreamedCompress, GptqEqualsTheInMemoryRun) {
  expect_streamed_equals_in_memory("stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n");
}

TEST(StreamedCompress, RtnEqualsTheInMemoryRun) {
  expect_streamed_equals_in_memory(
      "stages:\n  - algorithm: rtn\n    bits: 3\n    group_size: 32\n    targets: ['*.mlp.*']\n");
}

TEST(StreamedCompress, MultiStageEqualsTheInMemoryRun) {
  expect_streamed_equals_in_memory(
      "stages:\n  - algorithm: sparsegpt\n    sparsity: 0.5\n  - algorithm: gptq\n    bits: 4\n"
      "    group_size: 32\n    targets: ['*.self_attn.*']\n");
}

TEST(StreamedCompress, AwqEqualsTheInMemoryRun) {
  expect_streamed_equals_in_memory("stages:\n  - algorithm: awq\n    bits: 4\n    group_size: 32\n");
}

// Keeping o/down inputs for every window or forming them again per window gives the same
// statistics and so the same result.
TEST(StreamedCompress, RecomputedBlockInputsEqualKeptOnes) {
  LlamaModel m = test::random_llama(test::compress_config(3), 8);
  const auto win = calibration_windows(test::random_tokens(500, 9), 4, 30);
  auto sums = [&](uint64_t reuse) {
    std::vector<double> s;
    CalibrationHooks h;
    h.observe = [&](const LinearGroup&, const float* x, int64_t rows) {
      double a = 0;
      for (int64_t i = 0; i < rows * 8; ++i) a += x[i] * (1.0 + double(i % 7));
      s.push_back(a);
    };
    CalibrationOptions o;
    o.reuse_budget = reuse;
    sequential_calibrate(m, win, h, {}, nullptr, o);
    return s;
  };
  EXPECT_EQ(sums(0), sums(uint64_t(1) << 30));
}

TEST(ActivationStore, SpillsPastItsBudgetAndRoundTrips) {
  const auto dir = test::fresh_temp_dir();
  std::vector<float> x(3 * 5), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) * 0.37f - 2.0f;
  ActivationStore mem({3, 2}, 5, DType::F32, 1 << 20, dir.string());
  ActivationStore disk({3, 2}, 5, DType::F32, 16, dir.string());
  EXPECT_FALSE(mem.spilled());
  EXPECT_TRUE(disk.spilled());
  EXPECT_EQ(disk.bytes(), 5u * 5 * 4);
  for (ActivationStore* s : {&mem, &disk}) {
    s->put(0, x.data());
    s->get(0, y.data());
    EXPECT_EQ(x, y);
  }
  // O_TMPFILE: the spilled store leaves nothing in the directory.
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  ActivationStore half({3}, 5, DType::BF16, 1 << 20, "");
  EXPECT_EQ(half.bytes(), 3u * 5 * 2);
  half.put(0, x.data());
  half.get(0, y.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], bf16_to_f32(f32_to_bf16(x[i])));
}

// Calibration activations spilled to a scratch file (a budget of 0 bytes) give exactly the
// result of keeping them in memory.
TEST(StreamedCompress, SpilledActivationsGiveTheSameResult) {
  const LlamaModel base = test::random_llama(test::compress_config(3), 3);
  const Recipe recipe = parse_recipe("stages:\n  - algorithm: gptq\n    bits: 4\n    group_size: 32\n", "t.yaml");
  const auto calib = test::random_tokens(600, 4);
  CompressOptions o = test::calib_options(5, 40);
  const CompressionResult kept = compress_llama(base, recipe, calib, o);
  o.activation_budget = 0;
  o.scratch_dir = test::fresh_temp_dir().string();
  const CompressionResult spilled = compress_llama(base, recipe, calib, o);
  const auto a = kept.model.named_tensors();
  const auto b = spilled.model.named_tensors();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) expect_same_tensor(*a[i].second, *b[i].second, a[i].first);
}

// Between stages, a Dense record (a structured stage's sliced weights) is a view of the
// block the writer just mapped, not a second f32 copy held until the last stage; the packed
// layers are the in-memory run's (matched by name: the two list them in different orders).
TEST(StreamedCompress, DenseRecordsOfAnEarlierStageViewTheMappedBlock) {
  const std::string yaml =
      "stages:\n  - algorithm: channels\n    fraction: 0.25\n  - algorithm: rtn\n    bits: 4\n"
      "    group_size: 0\n";
  const auto dir = test::fresh_temp_dir();
  const LlamaModel base = test::random_llama(test::compress_config(3), 3);
  const Recipe recipe = parse_recipe(yaml, "t.yaml");
  CompressOptions o;
  o.calib_windows = 5, o.calib_window = 40;
  const CompressionResult whole = compress_llama(base, recipe, test::random_tokens(600, 4), o);
  StreamedLlamaWriter writer(dir.string(), DType::F32);
  int checked = 0;
  o.block_done = [&](const BlockDone& d, CompressionResult& r) {
    writer.block_done(d, r);
    if (d.last()) return;
    const std::string prefix = "model.layers." + std::to_string(d.layer) + ".";
    for (const CompressedLayer& l : r.layers) {
      if (l.tensor.coding != WeightCoding::Dense || !l.tensor.name.starts_with(prefix)) continue;
      const Tensor* w = find_weight(r.model, l.tensor.name);
      EXPECT_FALSE(l.tensor.dense.writable()) << l.tensor.name;
      EXPECT_EQ(l.tensor.dense.data(), w->data()) << l.tensor.name;
      ++checked;
    }
  };
  CompressionResult res = compress_llama(base, recipe, test::random_tokens(600, 4), o);
  writer.finish(res);
  EXPECT_EQ(checked, 3 * 3);  // gate, up, down of three blocks
  const auto packed = read_packed_safetensors((dir / kPackedFileName).string());
  ASSERT_EQ(packed.size(), whole.layers.size());
  for (const CompressedTensor& t : packed)
    for (const CompressedLayer& l : whole.layers)
      if (l.tensor.name == t.name)
        expect_same_tensor(t.dequantize(), l.tensor.dequantize(), t.name);
}
