// mcw compress writes packed.safetensors beside the dequantised model, and mcw inspect of
// that directory lists its layers' schemes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/export/packed_safetensors.h"
#include "tests/cli/cli_test_util.h"

namespace fs = std::filesystem;
using namespace mcw;
using namespace mcw::test;

namespace {

// The output line of inspect's packed table (after the tensor table) for `layer`.
std::string row_of(const std::string& out, const std::string& layer) {
  const size_t table = out.find("\npacked ");
  if (table == std::string::npos) return {};
  size_t at = out.find("\n" + layer + " ", table);
  if (at == std::string::npos) return {};
  const size_t end = out.find('\n', at + 1);
  return out.substr(at + 1, end - at - 1);
}

}  // namespace

TEST(CliPacked, CompressWritesPackedLayersAndInspectListsThem) {
  const fs::path dir = fresh_dir("packed");
  write_tiny_model_and_text(dir);
  write_bytes((dir / "recipe.yaml").string(),
              "stages:\n"
              "  - algorithm: rtn\n    bits: 4\n    group_size: 32\n    symmetric: true\n"
              "    targets: ['*self_attn*']\n"
              "  - algorithm: magnitude\n    sparsity: 0.5\n    targets: ['*mlp*']\n");
  const std::string out = (dir / "out").string();
  const Result c = run_mcw("compress " + (dir / "model").string() + " --recipe " +
                           (dir / "recipe.yaml").string() + " --out " + out + " --json");
  ASSERT_EQ(c.code, 0) << c.err;
  ASSERT_TRUE(fs::exists(fs::path(out) / "compression.json"));
  ASSERT_TRUE(fs::exists(fs::path(out) / kPackedFileName));

  // The packed file holds exactly the layers compression.json lists, with their schemes.
  const auto report = nlohmann::json::parse(c.out);
  const auto layers = read_packed_safetensors((fs::path(out) / kPackedFileName).string());
  ASSERT_EQ(layers.size(), report["layers"].size());
  ASSERT_EQ(layers.size(), 14u);  // 2 blocks x (4 attention + 3 MLP)
  for (size_t i = 0; i < layers.size(); ++i) {
    EXPECT_EQ(layers[i].name, report["layers"][i]["name"]);
    EXPECT_EQ(layers[i].describe(), report["layers"][i]["scheme"]);
    EXPECT_DOUBLE_EQ(layers[i].bits_per_weight(), report["layers"][i]["bits_per_weight"]);
  }

  const Result r = run_mcw("inspect --no-stats " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("packed.safetensors (14 compressed layers)"), std::string::npos) << r.out;
  // q_proj [32, 32], groups of 32 (one per row): 4-bit codes + an f16 scale per 32 weights.
  const std::string q = row_of(r.out, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_NE(q.find("int4 per-channel sym"), std::string::npos) << r.out;
  EXPECT_NE(q.find(" 4.500 "), std::string::npos) << q;
  EXPECT_NE(q.find(" 0.00%"), std::string::npos) << q;
  // up_proj [40, 32], 50 % pruned: f16 for the kept half plus a 1-bit mask = 9 bits.
  const std::string up = row_of(r.out, "model.layers.1.mlp.up_proj.weight");
  EXPECT_NE(up.find("f16, 50% sparse"), std::string::npos) << r.out;
  EXPECT_NE(up.find(" 9.000 "), std::string::npos) << up;
  EXPECT_NE(up.find(" 50.00%"), std::string::npos) << up;

  const Result j = run_mcw("inspect --no-stats --json " + out);
  ASSERT_EQ(j.code, 0) << j.err;
  const auto doc = nlohmann::json::parse(j.out);
  ASSERT_EQ(doc["packed_layers"].size(), 14u);
  EXPECT_EQ(doc["packed_layers"][0]["coding"], "affine");
  EXPECT_EQ(doc["packed_layers"][4]["coding"], "dense");
  EXPECT_DOUBLE_EQ(doc["packed_layers"][4]["sparsity"].get<double>(), 0.5);

  // A damaged packed file is one line naming it, not a half-printed table.
  const fs::path packed = fs::path(out) / kPackedFileName;
  const std::string bytes = slurp(packed);
  write_bytes(packed.string(), bytes.substr(0, bytes.size() - 5));
  expect_one_line_error(run_mcw("inspect --no-stats " + out), "packed.safetensors", "data");
}

// mcw export --format compressed-tensors of that output: the affine layers go out as
// pack-quantized parts, the sparse ones dense with the reason, and the result evaluates
// (through MCW's compressed-tensors reader) as the source does.
TEST(CliPacked, ExportWritesACompressedTensorsCheckpoint) {
  const fs::path dir = fresh_dir("export");
  write_tiny_model_and_text(dir);
  write_bytes((dir / "recipe.yaml").string(),
              "stages:\n"
              "  - algorithm: rtn\n    bits: 4\n    group_size: 32\n    targets: ['*self_attn*']\n"
              "  - algorithm: magnitude\n    sparsity: 0.5\n    targets: ['*mlp*']\n");
  const std::string out = (dir / "out").string(), ct = (dir / "ct").string();
  ASSERT_EQ(run_mcw("compress " + (dir / "model").string() + " --recipe " +
                    (dir / "recipe.yaml").string() + " --out " + out)
                .code,
            0);
  const Result e = run_mcw("export " + out + " --format compressed-tensors --out " + ct);
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("8 layers as pack-quantized parts, 0 as sparse-24-bitmask, 6 dense"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("model.layers.0.mlp.up_proj.weight (a sparsity mask)"), std::string::npos)
      << e.out;
  const Result i = run_mcw("inspect --no-stats " + ct);
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_NE(i.out.find("compressed-tensors int4 per channel asym"), std::string::npos) << i.out;
  const Result bad = run_mcw("export " + out + " --format onnx --out " + (dir / "g").string());
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("the formats are: gguf, compressed-tensors"), std::string::npos) << bad.err;
  const Result untyped = run_mcw("export " + out + " --format gguf --out " + (dir / "g").string());
  EXPECT_NE(untyped.code, 0);
  EXPECT_NE(untyped.err.find("needs --type (e.g. Q4_K_M)"), std::string::npos) << untyped.err;
}
