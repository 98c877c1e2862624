// A recovered model written block by block: in recode mode every packed layer is kept in
// its layout (adapted ones re-coded, fold_layer's result exactly) and the dense weights are
// what the layers decode to; in dense mode the adapted weights are frozen + s·B·A and no
// packed file is written. Read back from the directory as any model is.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "engine/compress/rtn.h"
#include "engine/export/packed_safetensors.h"
#include "engine/export/recovered_writer.h"
#include "engine/io/model_file.h"
#include "engine/train/llama_backprop.h"
#include "engine/train/lora.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

const Tensor& weight(const LlamaModel& m, const std::string& name) {
  for (const auto& [n, t] : m.named_tensors())
    if (n == name) return *t;
  throw std::runtime_error("no " + name);
}

void expect_equal(const Tensor& a, const Tensor& b, const std::string& what, float tol = 0) {
  const std::vector<float> x = a.to_f32(), y = b.to_f32();
  ASSERT_EQ(x.size(), y.size()) << what;
  for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], y[i], tol) << what << " [" << i << "]";
}

}  // namespace

TEST(RecoveredWriter, RecodesOrMergesBlockByBlock) {
  const LlamaConfig cfg = test::tiny_config();
  const LlamaModel base = test::random_llama(cfg, 51);
  const std::string q0 = "model.layers.0.self_attn.q_proj.weight",
                    d1 = "model.layers.1.mlp.down_proj.weight",
                    u1 = "model.layers.1.mlp.up_proj.weight",
                    v0 = "model.layers.0.self_attn.v_proj.weight";
  std::vector<CompressedTensor> packed;
  LlamaModel compressed = clone_model(base);
  for (const std::string& n : {q0, d1, u1}) {
    const Tensor& w = weight(base, n);
    RtnOptions o;
    o.bits = 4, o.group_size = 8;
    packed.push_back(quantize_rtn(w.as<float>(), w.dim(0), w.dim(1), o, nullptr, nullptr, n));
  }
  decode_layers_into(compressed, packed, "packed");
  // Adapters on two packed layers (q0, d1) and an unpacked one (v0); u1 stays as it was.
  RecoveryResult r;
  r.adapters = init_lora(compressed, {q0, d1, v0}, 2, 8, LoraScaling::Lora, 1);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 0.5f);
  for (LoraAdapter& a : r.adapters.adapters)
    for (int64_t i = 0; i < a.b.numel(); ++i) a.b.mutable_as<float>()[i] = nd(rng);

  const fs::path root = test::fresh_temp_dir();
  fs::create_directories(root / "recode");
  const RecoveredModel rec = write_recovered_model((root / "recode").string(), compressed, packed,
                                                   r, RecoveryMerge::Recode);
  EXPECT_EQ(rec.packed_layers, 3u);
  ASSERT_EQ(rec.added_error.size(), 2u);  // q0 and d1
  const std::vector<CompressedTensor> back =
      read_packed_safetensors((root / "recode" / kPackedFileName).string());
  ASSERT_EQ(back.size(), 3u);
  const LlamaModel read = load_llama(open_model_file((root / "recode").string()));
  for (const CompressedTensor& c : packed) {
    const FoldedLayer f = fold_layer(c, r);
    const CompressedTensor* got = nullptr;
    for (const CompressedTensor& b : back)
      if (b.name == c.name) got = &b;
    ASSERT_TRUE(got) << c.name;
    EXPECT_EQ(got->codes, f.tensor.codes) << c.name;
    EXPECT_EQ(f.changed, c.name != u1) << c.name;
    expect_equal(weight(read, c.name), f.tensor.dequantize(), c.name);
  }
  // The adapted layer without a packed form is merged dense.
  Tensor merged_v0;
  for (const LoraAdapter& a : r.adapters.adapters)
    if (a.name == v0) merged_v0 = merge_lora(weight(compressed, v0), a, r.adapters.scale());
  expect_equal(weight(read, v0), merged_v0, v0);
  expect_equal(weight(read, "model.layers.1.self_attn.k_proj.weight"),
               weight(compressed, "model.layers.1.self_attn.k_proj.weight"), "k_proj");
  expect_equal(rec.model.tok_embd, base.tok_embd, "embeddings");

  fs::create_directories(root / "dense");
  const RecoveredModel dense =
      write_recovered_model((root / "dense").string(), compressed, packed, r, RecoveryMerge::Dense);
  EXPECT_EQ(dense.packed_layers, 0u);
  EXPECT_FALSE(fs::exists(root / "dense" / kPackedFileName));
  const LlamaModel dense_read = load_llama(open_model_file((root / "dense").string()));
  for (const LoraAdapter& a : r.adapters.adapters) {
    const Tensor m = merge_lora(weight(compressed, a.name), a, r.adapters.scale());
    expect_equal(weight(dense_read, a.name), m, a.name, 1e-6f);
  }
  expect_equal(weight(dense_read, u1), weight(compressed, u1), u1);
}
