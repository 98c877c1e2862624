// A saved llama-family model says the family it came from where that family's config can
// hold it (LlamaConfig::hf_model_type).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/model/llama_save.h"
#include "llama_reference.h"
#include "llama_test_util.h"

namespace mcw {
namespace {

const std::vector<int32_t> kTokens = {1, 5, 9, 2, 30, 7, 7, 12};

nlohmann::json saved_config(const LlamaModel& m, const std::string& dir) {
  TokenizerFiles tok;
  tok.byte_vocab = true;
  save_llama_hf(m, dir, tok);
  return nlohmann::json::parse(std::ifstream(dir + "/config.json"));
}

TEST(LlamaFamilies, AQwen2StaysAQwen2WhenSaved) {
  const std::string dir = testing::TempDir() + "/families_qwen2";
  LlamaConfig c = test::tiny_config(4, 2, /*tied=*/true);
  c.model_type = "qwen2", c.qkv_bias = true;
  const LlamaModel m = test::random_llama(c, 7);
  const nlohmann::json j = saved_config(m, dir);
  EXPECT_EQ(j["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(j["model_type"], "qwen2");
  EXPECT_FALSE(j.contains("attention_bias"));  // Qwen2's q/k/v biases are implied
  EXPECT_EQ(j["use_sliding_window"], false);
  const LlamaModel back = load_llama(dir);
  EXPECT_EQ(back.cfg.model_type, "qwen2");
  EXPECT_TRUE(back.cfg.qkv_bias);
  EXPECT_FALSE(back.cfg.o_bias);  // no zero o_proj bias was written beside it
  EXPECT_EQ(test::engine_logits(back, kTokens), test::engine_logits(m, kTokens));

  // A windowed Qwen2 windows every layer from layer 0 on, and reads back so.
  LlamaModel w = m;
  w.cfg.sliding_window = 4;
  const nlohmann::json jw = saved_config(w, dir);
  EXPECT_EQ(jw["use_sliding_window"], true);
  EXPECT_EQ(jw["max_window_layers"], 0);
  EXPECT_EQ(load_llama(dir).cfg.sliding_window, 4);
  std::filesystem::remove_all(dir);
}

// Structured pruning's compensation biases on o_proj/down_proj have no place in Qwen2's
// config: the model is written as the Llama with attention_bias and mlp_bias it then is.
TEST(LlamaFamilies, AQwen2WithOutputBiasesIsWrittenAsALlama) {
  const std::string dir = testing::TempDir() + "/families_qwen2_biases";
  LlamaConfig c = test::tiny_config(4, 2, /*tied=*/true);
  c.model_type = "qwen2", c.qkv_bias = true, c.o_bias = true;
  LlamaModel m = test::random_llama(c, 8);
  for (LlamaLayer& L : m.layers) L.bo = Tensor::zeros(DType::F32, {c.dim}, "bo");
  m.layers[0].bo.mutable_as<float>()[3] = 0.25f;
  for (auto& [name, t] : m.named_tensors()) t->set_name(name);
  const nlohmann::json j = saved_config(m, dir);
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(j["attention_bias"], true);
  const LlamaModel back = load_llama(dir);
  EXPECT_TRUE(back.cfg.o_bias);
  EXPECT_EQ(test::engine_logits(back, kTokens), test::engine_logits(m, kTokens));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mcw
