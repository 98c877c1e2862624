// BPE trainer: merges on tiny corpora worked out by hand, a naive count-everything-and-merge
// reference on random corpora, and the written tokenizer.json loading and round-tripping.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>

#include "engine/core/error.h"
#include "engine/model/bpe_tokenizer.h"
#include "engine/model/bpe_trainer.h"
#include "engine/model/json_fields.h"
#include "engine/model/pre_tokenizer.h"
#include "temp_files.h"

using namespace mcw;

namespace {

using MergeBytes = std::vector<std::pair<std::string, std::string>>;

MergeBytes merges_as_bytes(const TrainedBpe& t) {
  MergeBytes out;
  for (const auto& m : t.merges) out.push_back({t.tokens[size_t(m.left)], t.tokens[size_t(m.right)]});
  return out;
}

// Recounts every pair of every word before each merge; ties go to the lowest (left id,
// right id) with ids as the trainer gives them (bytes, then merges in order).
MergeBytes naive_train(const std::string& corpus, size_t n_merges) {
  std::map<std::string, int64_t> words;
  {
    nlohmann::json node = nlohmann::json::parse(
        BpeTrainer::pre_tokenizer_json(BpeTrainer::default_split_pattern()).dump());
    node["pretokenizers"].erase(1);  // keep the Split, drop the byte-level spelling
    std::vector<std::string> pieces;
    PreTokenizer(node, "p", JsonFields("t")).split(corpus, true, pieces);
    for (const auto& p : pieces) ++words[p];
  }
  std::vector<std::string> token;  // id -> bytes
  std::map<std::string, int32_t> id;
  for (int b = 0; b < 256; ++b) token.emplace_back(1, char(b)), id[token.back()] = b;
  std::vector<std::pair<std::vector<int32_t>, int64_t>> ws;
  for (const auto& [w, n] : words) {
    std::vector<int32_t> s;
    for (char c : w) s.push_back(int32_t(static_cast<unsigned char>(c)));
    ws.push_back({s, n});
  }
  MergeBytes out;
  while (out.size() < n_merges) {
    std::map<std::pair<int32_t, int32_t>, int64_t> count;
    for (const auto& [s, n] : ws) {
      for (size_t i = 0; i + 1 < s.size(); ++i) count[{s[i], s[i + 1]}] += n;
    }
    if (count.empty()) break;
    auto best = count.begin();  // std::map order is (left, right) ascending: first max wins
    for (auto it = count.begin(); it != count.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    const auto [a, b] = best->first;
    out.push_back({token[size_t(a)], token[size_t(b)]});
    const std::string m = token[size_t(a)] + token[size_t(b)];
    if (!id.count(m)) id[m] = int32_t(token.size()), token.push_back(m);
    for (auto& [s, n] : ws) {
      std::vector<int32_t> r;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          r.push_back(id[m]), i += 2;
        } else {
          r.push_back(s[i++]);
        }
      }
      s = r;
    }
  }
  return out;
}

}  // namespace

TEST(BpeTrainer, HandWorkedMerges) {
  // "ab ab ab abc" -> pre-tokens "ab" x1, " ab" x2, " abc" x1.
  // Pairs: (a,b) 4, (' ',a) 3, (b,c) 1 -> merge "ab" (256).
  // Then (' ',ab) 3, (ab,c) 1 -> merge " ab" (257). Then (' ab',c) 1 -> " abc" (258).
  // Nothing is left, so training stops below the requested size.
  BpeTrainer tr;
  tr.add_text("ab ab ab abc");
  EXPECT_EQ(tr.distinct_pre_tokens(), 3u);
  TrainedBpe t = tr.train(1000);
  EXPECT_EQ(merges_as_bytes(t), (MergeBytes{{"a", "b"}, {" ", "ab"}, {" ab", "c"}}));
  EXPECT_EQ(t.tokens.size(), 256u + 3 + 2);
  EXPECT_EQ(t.tokens[259], "<|bos|>");
  EXPECT_EQ(t.first_special, 259);

  // Ties: "xy yx" -> "xy", " yx": (x,y), (' ',y), (y,x) all 1. Lowest left id first:
  // ' ' (32) -> " y" (256); then (x,y) (120,121) before (" y",x) (256,120) -> "xy" (257);
  // then " yx".
  BpeTrainer ties;
  ties.add_text("xy yx");
  EXPECT_EQ(merges_as_bytes(ties.train(300, {})),
            (MergeBytes{{" ", "y"}, {"x", "y"}, {" y", "x"}}));
  // The target size caps the merges: 256 + 1 merge + 2 specials.
  EXPECT_EQ(ties.train(259).merges.size(), 1u);
}

TEST(BpeTrainer, MatchesNaiveCountAndMerge) {
  std::mt19937 rng(17);
  const char* pieces[] = {"a", "b", "ab", " ", "ba", "c", "\n", "aab", "!", "1"};
  for (int round = 0; round < 3; ++round) {
    std::string corpus;
    for (int i = 0; i < 3000; ++i) corpus += pieces[rng() % 10];
    BpeTrainer tr;
    tr.add_text(corpus);
    const TrainedBpe t = tr.train(256 + 60, {});
    ASSERT_EQ(merges_as_bytes(t), naive_train(corpus, 60)) << "round " << round;
  }
}

TEST(BpeTrainer, TrainedTokenizerLoadsAndRoundTrips) {
  std::mt19937 rng(23);
  const char* words[] = {"the", "cat", "sat", "on", "mat", "caf\xC3\xA9", "\xE4\xB8\x96\xE7\x95\x8C",
                         "\xF0\x9F\x8E\x89", "don't", "42", "\n", "!!"};
  std::string corpus;
  for (int i = 0; i < 4000; ++i) corpus += std::string(i % 7 ? " " : "") + words[rng() % 12];
  BpeTrainer tr;
  tr.add_text(corpus);
  const TrainedBpe trained = tr.train(400);
  const std::string path = (test::fresh_temp_dir() / "bpe_trained_tokenizer.json").string();
  trained.save(path);
  auto tok = BpeTokenizer::from_file(path);
  std::remove(path.c_str());
  EXPECT_EQ(tok->vocab_size(), int32_t(trained.tokens.size()));
  EXPECT_EQ(tok->bos_id(), trained.first_special);
  EXPECT_EQ(tok->eos_id(), trained.first_special + 1);
  const std::vector<int32_t> ids = tok->encode(corpus, false);
  EXPECT_EQ(tok->decode(ids), corpus);
  // Frequent words became single tokens, so the text is much shorter than in bytes.
  EXPECT_LT(ids.size() * 3, corpus.size());
  // Ids of merged tokens are the trainer's: " cat" is one token with the trainer's id.
  for (size_t id = 256; id < size_t(trained.first_special); ++id) {
    if (trained.tokens[id] == " cat") {
      EXPECT_EQ(tok->encode(" cat", false), (std::vector<int32_t>{int32_t(id)}));
    }
  }
  EXPECT_EQ(tok->encode("<|eos|>", true),
            (std::vector<int32_t>{trained.first_special, trained.first_special + 1}));
  const std::string odd = "\xFF unseen \xE2\x82\xAC text\x01";
  EXPECT_EQ(tok->decode(tok->encode(odd, false)), odd);
}

TEST(BpeTrainer, RejectsBadSettings) {
  BpeTrainer tr;
  tr.add_text("abc");
  EXPECT_THROW(tr.train(257), Error);  // 256 bytes + 2 specials do not fit
  EXPECT_THROW(tr.train(300, {"<a>", "<a>"}), Error);
  EXPECT_THROW(tr.train(300, {""}), Error);
  EXPECT_THROW(tr.train(300, {"\xFF"}), Error);
  CancelToken cancel;
  cancel.cancel();
  EXPECT_THROW(tr.train(300, {}, &cancel), Cancelled);
}
