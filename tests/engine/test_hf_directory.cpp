// Hugging Face model directories written by the tests: one file, several shards with an
// index, and each way such a directory can be broken.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/io/hf_directory.h"
#include "engine/io/model_file.h"
#include "engine/io/safetensors.h"
#include "tests/engine/temp_files.h"

using namespace mcw;
using mcw::test::fresh_temp_dir;
using mcw::test::write_bytes;
namespace fs = std::filesystem;

namespace {

const char* kShard1 = "model-00001-of-00002.safetensors";
const char* kShard2 = "model-00002-of-00002.safetensors";
const char* kConfig = R"({"model_type": "llama", "hidden_size": 8,
  "architectures": ["LlamaForCausalLM"], "rope_scaling": {"type": "linear", "factor": 2.0}})";

Tensor values(std::vector<float> v, Shape shape, std::string name) {
  Tensor t = Tensor::from_f32(v, std::move(shape));
  t.set_name(std::move(name));
  return t;
}

// Shard 1 holds a and b, shard 2 holds c; every value differs, so a tensor read from the
// wrong shard cannot pass.
void write_sharded(const fs::path& dir, const std::string& weight_map) {
  write_bytes(dir / "config.json", kConfig);
  write_safetensors((dir / kShard1).string(),
                    {values({1, 2}, {2}, "a"), values({3, 4, 5, 6}, {2, 2}, "b")}, {{"s", "1"}});
  write_safetensors((dir / kShard2).string(), {values({7, 8, 9}, {3}, "c")}, {{"s", "2"}});
  write_bytes(dir / "model.safetensors.index.json",
              R"({"metadata": {"total_size": 36}, "weight_map": )" + weight_map + "}");
}

const std::string kWeightMap = std::string(R"({"c": ")") + kShard2 + R"(", "a": ")" + kShard1 +
                               R"(", "b": ")" + kShard1 + R"("})";

// Reads `dir` expecting an mcw::Error whose message holds each of `phrases`.
void expect_refused(const fs::path& dir, const std::vector<std::string>& phrases,
                    int64_t offset = -2) {
  try {
    read_hf_directory(dir.string());
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const std::string& p : phrases) EXPECT_NE(what.find(p), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    if (offset != -2) {
      EXPECT_EQ(e.offset(), offset) << what;
    }
  }
}

}  // namespace

TEST(HFDirectory, SingleFileDirectory) {
  const fs::path dir = fresh_temp_dir();
  write_bytes(dir / "config.json", kConfig);
  write_safetensors((dir / "model.safetensors").string(),
                    {values({1, 2, 3}, {3}, "w"), values({4}, {}, "s")}, {{"format", "pt"}});

  const ModelFile m = read_hf_directory(dir.string());
  EXPECT_EQ(m.format, ModelFormat::HFDirectory);
  EXPECT_EQ(m.path, dir.string());
  EXPECT_EQ(m.architecture, "llama");
  EXPECT_EQ(m.hparams.at("hidden_size"), 8);
  EXPECT_EQ(m.hparams.at("rope_scaling").at("factor"), 2.0);
  EXPECT_EQ(m.hparams.begin().key(), "model_type");  // file order kept
  EXPECT_EQ(m.metadata.at("format"), "pt");
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.tensors[0].name(), "w");
  EXPECT_EQ(m.tensors[0].to_f32(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(m.tensors[1].name(), "s");
  EXPECT_EQ(m.tensors[1].shape(), Shape{});
  EXPECT_EQ(m.tensors[1].to_f32(), (std::vector<float>{4}));
}

TEST(HFDirectory, OpenModelFileRecognisesADirectory) {
  const fs::path dir = fresh_temp_dir();
  write_bytes(dir / "config.json", kConfig);
  write_safetensors((dir / "model.safetensors").string(), {values({1}, {1}, "w")});
  const ModelFile m = open_model_file(dir.string());
  EXPECT_EQ(m.format, ModelFormat::HFDirectory);
  ASSERT_EQ(m.tensors.size(), 1u);
}

TEST(HFDirectory, ArchitectureFallsBackToArchitecturesList) {
  const fs::path dir = fresh_temp_dir();
  write_bytes(dir / "config.json", R"({"architectures": ["GPT2LMHeadModel"], "n_embd": 4})");
  write_safetensors((dir / "model.safetensors").string(), {values({1}, {1}, "w")});
  EXPECT_EQ(read_hf_directory(dir.string()).architecture, "GPT2LMHeadModel");

  write_bytes(dir / "config.json", R"({"n_embd": 4})");
  EXPECT_EQ(read_hf_directory(dir.string()).architecture, "");
}

TEST(HFDirectory, LoneSafetensorsFileWithAnotherNameIsAccepted) {
  const fs::path dir = fresh_temp_dir();
  write_bytes(dir / "config.json", kConfig);
  write_safetensors((dir / "weights.safetensors").string(), {values({5, 6}, {2}, "w")});
  const ModelFile m = read_hf_directory(dir.string());
  ASSERT_EQ(m.tensors.size(), 1u);
  EXPECT_EQ(m.tensors[0].to_f32(), (std::vector<float>{5, 6}));

  // A second candidate makes the choice ambiguous.
  write_safetensors((dir / "other.safetensors").string(), {values({7}, {1}, "w")});
  expect_refused(dir, {dir.string(), "2 .safetensors files", "index.json"});
}

TEST(HFDirectory, ShardedDirectoryReadsEachTensorFromItsShard) {
  const fs::path dir = fresh_temp_dir();
  write_sharded(dir, kWeightMap);
  const ModelFile m = read_hf_directory(dir.string());
  EXPECT_EQ(m.architecture, "llama");
  ASSERT_EQ(m.tensors.size(), 3u);
  // Shard order, then data order within a shard, whatever order the weight map uses.
  EXPECT_EQ(m.tensors[0].name(), "a");
  EXPECT_EQ(m.tensors[0].to_f32(), (std::vector<float>{1, 2}));
  EXPECT_EQ(m.tensors[1].name(), "b");
  EXPECT_EQ(m.tensors[1].shape(), (Shape{2, 2}));
  EXPECT_EQ(m.tensors[1].to_f32(), (std::vector<float>{3, 4, 5, 6}));
  EXPECT_EQ(m.tensors[2].name(), "c");
  EXPECT_EQ(m.tensors[2].to_f32(), (std::vector<float>{7, 8, 9}));
  EXPECT_EQ(m.metadata.at("s"), "1");  // the first shard's value wins
}

TEST(HFDirectory, MissingShardIsNamed) {
  const fs::path dir = fresh_temp_dir();
  write_sharded(dir, R"({"a": ")" + std::string(kShard1) +
                         R"(", "z": "model-00003-of-00002.safetensors"})");
  expect_refused(dir, {"model-00003-of-00002.safetensors", "does not exist"});
}

TEST(HFDirectory, TensorMissingFromItsShardIsNamed) {
  const fs::path dir = fresh_temp_dir();
  // "c" is in shard 2, not shard 1 where the index puts it.
  write_sharded(dir, R"({"a": ")" + std::string(kShard1) + R"(", "c": ")" + kShard1 + R"("})");
  expect_refused(dir, {kShard1, "tensor 'c' is listed for this shard", "but is not in it"});
}

TEST(HFDirectory, TensorInTwoShardsIsRefused) {
  const fs::path dir = fresh_temp_dir();
  write_sharded(dir, kWeightMap);
  write_safetensors((dir / kShard2).string(), {values({7}, {1}, "a")});
  expect_refused(dir, {kShard2, "tensor 'a' is also in shard"});
}

TEST(HFDirectory, ShardNamesMustStayInsideTheDirectory) {
  for (const std::string shard : {"../x.safetensors", "sub/../../x.safetensors",
                                  "/etc/x.safetensors", ""}) {
    SCOPED_TRACE(shard);
    const fs::path dir = fresh_temp_dir();
    write_sharded(dir, R"({"a": ")" + shard + R"("})");
    expect_refused(dir, {"model.safetensors.index.json", "must be a relative path inside"});
  }
}

TEST(HFDirectory, MissingConfigIsNamed) {
  const fs::path dir = fresh_temp_dir();
  write_safetensors((dir / "model.safetensors").string(), {values({1}, {1}, "w")});
  expect_refused(dir, {(dir / "config.json").string(), "missing"});
}

TEST(HFDirectory, BrokenConfigNamesFileAndPosition) {
  const fs::path dir = fresh_temp_dir();
  write_safetensors((dir / "model.safetensors").string(), {values({1}, {1}, "w")});
  // The second comma, at byte 8, is where the parser gives up.
  write_bytes(dir / "config.json", R"({"a": 1,, "b": 2})");
  expect_refused(dir, {(dir / "config.json").string(), "config.json is not valid JSON"}, 8);

  write_bytes(dir / "config.json", R"(["not", "an", "object"])");
  expect_refused(dir, {"config.json", "is a JSON array"});

  write_bytes(dir / "config.json", std::string(100000, '{'));
  expect_refused(dir, {"config.json", "deeper than 64 levels"}, 64);
}

TEST(HFDirectory, BrokenIndexIsNamed) {
  const fs::path dir = fresh_temp_dir();
  write_sharded(dir, kWeightMap);
  write_bytes(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  expect_refused(dir, {"model.safetensors.index.json", "missing 'weight_map'"});

  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
  expect_refused(dir, {"weight_map entry for tensor 'a' is a number"});

  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": )");
  expect_refused(dir, {"model.safetensors.index.json is not valid JSON"});
}

TEST(HFDirectory, BrokenShardReportsTheShard) {
  const fs::path dir = fresh_temp_dir();
  write_sharded(dir, kWeightMap);
  write_bytes(dir / kShard2, "oops");
  expect_refused(dir, {(dir / kShard2).string(), "too short"});
}

TEST(HFDirectory, DirectoryWithoutWeightsIsRefused) {
  const fs::path dir = fresh_temp_dir();
  write_bytes(dir / "config.json", kConfig);
  write_bytes(dir / "pytorch_model.bin", "x");
  expect_refused(dir, {dir.string(), "no model.safetensors", "pytorch_model.bin is not read"});
}
