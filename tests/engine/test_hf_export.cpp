// mcw export --format hf: a model MCW reads (here a Q4_K_M GGUF) written as a Hugging Face
// sharded checkpoint that reads back to the source's decoded values in the chosen dtype,
// with its architecture and its tokenizer.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/core/blocks.h"
#include "engine/core/error.h"
#include "engine/core/half.h"
#include "engine/export/gguf_export.h"
#include "engine/export/gguf_file_type.h"
#include "engine/export/hf_export.h"
#include "engine/io/model_file.h"
#include "engine/model/bpe_trainer.h"
#include "engine/model/llama_save.h"
#include "engine/model/tokenizer_loader.h"
#include "engine/model/unicode_regex.h"
#include "llama_test_util.h"
#include "temp_files.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

// A Q4_K_M GGUF of a random model (rows of 256 for the K-quants) with a byte-level BPE
// tokenizer; `qwen2`: q/k/v biases and Qwen2's architecture.
std::string write_gguf(const fs::path& dir, bool qwen2) {
  LlamaConfig c = test::tiny_config(4, 2);
  c.dim = 256, c.head_dim = 64, c.hidden_dim = 512, c.vocab_size = 300;
  if (qwen2) c.model_type = "qwen2", c.qkv_bias = true;
  BpeTrainer trainer(gpt2_split_pattern());
  for (int i = 0; i < 40; ++i) trainer.add_text("the quick brown fox jumps over the lazy dog ");
  TokenizerFiles tok;
  tok.tokenizer_json = trainer.train(290, {"<|begin_of_text|>"}).to_tokenizer_json().dump();
  save_llama_hf(test::random_llama(c, 4), (dir / "hf").string(), tok);
  const std::string gguf = (dir / "m.gguf").string();
  export_gguf((dir / "hf").string(), gguf, *find_gguf_file_type("Q4_K_M"));
  return gguf;
}

}  // namespace

TEST(HfExport, GgufReadsBackAsItsDecodedValues) {
  const fs::path dir = test::fresh_temp_dir();
  const std::string gguf = write_gguf(dir, false);
  double last = 0;
  const HfExportReport r = export_hf(gguf, (dir / "out").string(), std::nullopt,
                                     [&](const ProgressEvent& e) { last = e.fraction; });
  EXPECT_EQ(r.dtype, DType::F16);  // block types: f16 by default
  EXPECT_EQ(r.shards, 3);          // two blocks and the rest
  EXPECT_EQ(last, 1.0);
  ASSERT_EQ(r.tokenizer_files.size(), 2u);  // tokenizer.json and tokenizer_config.json
  EXPECT_TRUE(fs::exists(dir / "out" / "model.safetensors.index.json"));

  const ModelFile src = open_model_file(gguf), out = open_model_file((dir / "out").string());
  EXPECT_EQ(out.hparams["torch_dtype"], "float16");
  EXPECT_EQ(out.hparams["architectures"][0], "LlamaForCausalLM");
  const LlamaModel a = load_llama(src), b = load_llama(out);
  const auto ta = a.named_tensors(), tb = b.named_tensors();
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    ASSERT_EQ(ta[i].first, tb[i].first);
    std::vector<float> want = ta[i].second->to_f32();
    if (ta[i].second->ndim() == 2)  // matrices in f16, vectors in f32
      for (float& v : want) v = f16_to_f32(f32_to_f16(v));
    EXPECT_EQ(tb[i].second->to_f32(), want) << ta[i].first;
  }
  const std::string text = "the lazy fox<|begin_of_text|> jumps";
  EXPECT_EQ(load_tokenizer(out)->encode(text, true), load_tokenizer(src)->encode(text, true));
}

TEST(HfExport, KeepsTheArchitectureAndTakesADtype) {
  const fs::path dir = test::fresh_temp_dir();
  const std::string gguf = write_gguf(dir, true);
  const HfExportReport r = export_hf(gguf, (dir / "out").string(), DType::BF16);
  EXPECT_EQ(r.dtype, DType::BF16);
  const ModelFile out = open_model_file((dir / "out").string());
  EXPECT_EQ(out.hparams["model_type"], "qwen2");
  EXPECT_EQ(out.hparams["torch_dtype"], "bfloat16");
  const LlamaModel a = load_llama(open_model_file(gguf)), b = load_llama(out);
  EXPECT_TRUE(b.cfg.qkv_bias);
  std::vector<float> want = a.layers[1].wv.to_f32();
  std::vector<uint16_t> bf(want.size());
  from_f32(DType::BF16, want.data(), bf.data(), want.size());
  to_f32(DType::BF16, bf.data(), want.data(), want.size());
  EXPECT_EQ(b.layers[1].wv.to_f32(), want);
  EXPECT_EQ(b.layers[1].bv.to_f32(), a.layers[1].bv.to_f32());
  EXPECT_THROW(export_hf(gguf, (dir / "q").string(), DType::Q8_0), Error);
  EXPECT_FALSE(fs::exists(dir / "q"));
}

TEST(HfExport, CancelLeavesNothing) {
  const fs::path dir = test::fresh_temp_dir();
  const std::string gguf = write_gguf(dir, false);
  CancelToken cancel;
  EXPECT_THROW(export_hf(
                   gguf, (dir / "out").string(), std::nullopt,
                   [&](const ProgressEvent&) { cancel.cancel(); }, &cancel),
               Cancelled);
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_TRUE(e.path().filename() == "hf" || e.path().filename() == "m.gguf") << e.path();
}
