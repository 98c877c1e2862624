// `mcw` on a tiny GPT-2 Hugging Face directory with a byte-level tokenizer.json: eval and
// generate give what the engine computes in-process; inspect shows it; compress refuses
// it in one line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../engine/gpt2_test_util.h"
#include "../engine/tokenizer_test_docs.h"
#include "engine/eval/perplexity.h"
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
  const auto lm = causal_lm_view(d.model);
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
  Gpt2Cache cache(d.model.cfg, 64);
  std::vector<float> logits(259);
  gpt2_forward(d.model, ids, cache, nullptr, logits.data());
  std::string want;
  for (int i = 0; i < 6; ++i) {
    const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (next == tok->eos_id()) break;
    want += tok->token_to_piece(next);
    gpt2_forward(d.model, std::span(&next, 1), cache, nullptr, logits.data());
  }
  ASSERT_FALSE(want.empty());
  const Result g = run_mcw("generate " + d.dir + " --prompt the --max-tokens 6");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out, want);
}

TEST(CliGpt2, InspectShowsItAndCompressRefusesIt) {
  const Gpt2Dir d = make_model("inspect");
  const Result r = run_mcw("inspect " + d.dir + " --no-stats");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("architecture  gpt2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("transformer.h.1.attn.c_attn.weight"), std::string::npos);
  const std::string out = (fresh_dir("inspect_out") / "c").string();
  expect_one_line_error(run_mcw("compress " + d.dir + " --recipe w4g128-rtn --out " + out), d.dir,
                        "only llama-family models compress today");
}
