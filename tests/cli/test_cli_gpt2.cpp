// `mcw` on a tiny GPT-2 Hugging Face directory with a byte-level tokenizer.json: eval and
// generate give what the engine computes in-process; inspect shows it; compress writes a
// GPT-2 back.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "../engine/gpt2_test_util.h"
#include "../engine/tokenizer_test_docs.h"
#include "engine/eval/perplexity.h"
#include "engine/io/gguf.h"
#include "engine/model/byte_level.h"
#include "engine/model/gpt2_save.h"
#include "engine/model/tokenizer_loader.h"
#include "tests/cli/cli_test_util.h"

using namespace mcw;
using namespace mcw::test;

namespace {

const char* const kText =
    "the theory of the thing: three thin threads, then the other thread, though thick.";

// 256 bytes, two merges ("th", "the"), and <|endoftext|>: 259 tokens.
std::string tokenizer_json() {
  nlohmann::json doc = byte_level_doc({{"t", "h"}, {"th", "e"}});
  doc["added_tokens"] = nlohmann::json::array({{{"id", 258},
                                                {"content", "<|endoftext|>"},
                                                {"special", true},
                                                {"lstrip", false},
                                                {"rstrip", false},
                                                {"single_word", false},
                                                {"normalized", false}}});
  return doc.dump();
}

struct Gpt2Dir {
  std::string dir, text;
  Gpt2Model model;
};

Gpt2Dir make_model(const std::string& name) {
  Gpt2Config c = tiny_gpt2_config();
  c.vocab_size = 259;
  c.n_positions = 64;
  Gpt2Dir d{(fresh_dir(name) / "model").string(), (fresh_dir(name + "_text") / "t.txt").string(),
            random_gpt2(c, 13)};
  Gpt2HfOptions opt;
  opt.tokenizer_json = tokenizer_json();
  save_gpt2_hf(d.model, d.dir, opt);
  write_bytes(d.text, kText);
  return d;
}

}  // namespace

TEST(CliGpt2, EvalMatchesTheEngine) {
  const Gpt2Dir d = make_model("eval");
  const auto tok = load_tokenizer(open_model_file(d.dir));
  const std::vector<int32_t> ids = tok->encode(kText, false);
  ASSERT_LT(ids.size(), std::string(kText).size());  // the merges did something
  const LlamaModel decoder = llama_from_gpt2(d.model);
  const auto lm = causal_lm_view(decoder);
  const EvalResult want = evaluate(*lm, ids, {32, 16});

  const Result r = run_mcw("eval " + d.dir + " --text " + d.text +
                           " --window 32 --stride 16 --json --baseline " + d.dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"], ids.size());
  EXPECT_EQ(j["scored"], want.scored);
  EXPECT_NEAR(j["perplexity"].get<double>(), want.perplexity, 1e-9 * want.perplexity);
  EXPECT_GT(want.perplexity, 1.0);
  EXPECT_NEAR(j["kl"].get<double>(), 0.0, 1e-9);
  EXPECT_EQ(j["top1_agreement"], 1.0);

  // 64 positions: a longer window is refused before any work, naming the model.
  const std::string longer = d.text + ".long";
  write_bytes(longer, std::string(kText) + kText + kText);
  expect_one_line_error(run_mcw("eval " + d.dir + " --text " + longer + " --window 65"), d.dir,
                        "exceeds the model's 64 positions");
}

TEST(CliGpt2, GenerateIsGreedyDecodingOfTheModel) {
  const Gpt2Dir d = make_model("generate");
  const auto tok = load_tokenizer(open_model_file(d.dir));
  std::vector<int32_t> ids = tok->encode("the", true);
  const LlamaModel decoder = llama_from_gpt2(d.model);
  KVCache cache(decoder.cfg, 64);
  std::vector<float> logits(259);
  llama_forward(decoder, ids, cache, nullptr, logits.data());
  std::string want;
  for (int i = 0; i < 6; ++i) {
    const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (next == tok->eos_id()) break;
    want += tok->token_to_piece(next);
    llama_forward(decoder, std::span(&next, 1), cache, nullptr, logits.data());
  }
  ASSERT_FALSE(want.empty());
  const Result g = run_mcw("generate " + d.dir + " --prompt the --max-tokens 6");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out, want);
}

// `mcw compress` of a GPT-2 writes a GPT-2 that `mcw eval` reads, close to the source;
// recovery (training) refuses it in one line.
TEST(CliGpt2, InspectShowsItAndCompressWritesAGpt2) {
  const Gpt2Dir d = make_model("inspect");
  const Result r = run_mcw("inspect " + d.dir + " --no-stats");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("architecture  gpt2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("transformer.h.1.attn.c_attn.weight"), std::string::npos);
  const std::filesystem::path work = fresh_dir("inspect_out");
  const std::string out = (work / "c").string(), recipe = (work / "w8.yaml").string();
  write_bytes(recipe, "stages:\n  - algorithm: gptq\n    bits: 8\n    group_size: 0\n");
  const Result c =
      run_mcw("compress " + d.dir + " --recipe " + recipe + " --calib " + d.text + " --out " + out);
  ASSERT_EQ(c.code, 0) << c.err;
  const auto config = nlohmann::json::parse(std::ifstream(out + "/config.json"));
  EXPECT_EQ(config["architectures"][0], "GPT2LMHeadModel");
  const std::string args = " --text " + d.text + " --window 32 --stride 16 --json";
  const Result a = run_mcw("eval " + d.dir + args), b = run_mcw("eval " + out + args);
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  const double pa = nlohmann::json::parse(a.out)["perplexity"],
               pb = nlohmann::json::parse(b.out)["perplexity"];
  EXPECT_NE(pa, pb);               // the weights changed
  EXPECT_NEAR(pb, pa, 0.02 * pa);  // by 8-bit codes' worth
  expect_one_line_error(run_mcw("recover " + out + " --text " + d.text + " --out " + out + "-r"),
                        out, "recovery needs llama's block");
}

TEST(CliGpt2, GgufFileEvaluatesLikeTheDirectory) {
  const Gpt2Dir d = make_model("gguf");
  // The same weights and vocabulary as llama.cpp stores a GPT-2: gpt2.* keys and a
  // tokenizer.ggml.model "gpt2" vocabulary with its merges.
  const std::string plain = d.dir + ".plain.gguf", gguf = d.dir + ".gguf";
  save_gpt2_gguf(d.model, plain);
  const GGUFFile g = read_gguf(plain);
  std::vector<GGUFKeyValue> kvs = g.kvs;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_level_char(uint8_t(b))), types.push_back(1);
  tokens.insert(tokens.end(), {"th", "the", "<|endoftext|>"});
  types.insert(types.end(), {1, 1, 3});
  kvs.push_back({"tokenizer.ggml.model", std::string("gpt2")});
  kvs.push_back({"tokenizer.ggml.tokens", GGUFValue::array(tokens)});
  kvs.push_back({"tokenizer.ggml.token_type", GGUFValue::array(types)});
  kvs.push_back(
      {"tokenizer.ggml.merges", GGUFValue::array(std::vector<std::string>{"t h", "th e"})});
  kvs.push_back({"tokenizer.ggml.eos_token_id", uint32_t(258)});
  write_gguf(gguf, kvs, g.tensors);

  const std::string args = " --text " + d.text + " --window 32 --stride 16 --json";
  const Result from_dir = run_mcw("eval " + d.dir + args);
  const Result from_gguf = run_mcw("eval " + gguf + args);
  ASSERT_EQ(from_dir.code, 0) << from_dir.err;
  ASSERT_EQ(from_gguf.code, 0) << from_gguf.err;
  const auto a = nlohmann::json::parse(from_dir.out), b = nlohmann::json::parse(from_gguf.out);
  EXPECT_EQ(a["tokens"], b["tokens"]);
  EXPECT_EQ(a["perplexity"].get<double>(), b["perplexity"].get<double>());
  const Result inspect = run_mcw("inspect " + gguf + " --no-stats");
  EXPECT_NE(inspect.out.find("architecture  gpt2"), std::string::npos) << inspect.out;
}
