// Byte-level BPE from tokenizer.json: ids for fixed strings worked out by hand, the fast
// merge loop against a naive reference, pre-tokenizer regexes, special tokens, errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <random>

#include "engine/core/error.h"
#include "engine/model/bpe_tokenizer.h"
#include "engine/model/json_fields.h"
#include "engine/model/pre_tokenizer.h"
#include "engine/model/utf8.h"
#include "temp_files.h"
#include "tokenizer_test_docs.h"

using namespace mcw;
using nlohmann::json;
using Ids = std::vector<int32_t>;

namespace {

const std::string G = "\xC4\xA0";  // "Ġ", the byte-level spelling of a space

// Ranks 0..7; results get ids 256.. in this order:
// 256 Ġt, 257 he, 258 Ġthe, 259 ll, 260 llo, 261 hello, 262 lo, 263 el.
std::vector<std::pair<std::string, std::string>> hand_merges() {
  return {{G, "t"}, {"h", "e"}, {G + "t", "he"}, {"l", "l"},
          {"ll", "o"}, {"he", "llo"}, {"l", "o"}, {"e", "l"}};
}

std::vector<std::string> pieces_of(const std::string& pattern, const std::string& text) {
  json node = {{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}};
  PreTokenizer pre(node, "pre_tokenizer", JsonFields("test"));
  std::vector<std::string> out;
  pre.split(text, true, out);
  return out;
}

std::string error_of(const json& doc) {
  try {
    BpeTokenizer t(doc, "tok.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// The textbook algorithm: scan every adjacent pair, merge the lowest-ranked one (leftmost
// on ties), repeat until no pair has a rank. Works on strings, not ids.
std::vector<std::string> naive_bpe(const std::string& word,
                                   const std::map<std::pair<std::string, std::string>, int>& rank) {
  std::vector<std::string> syms;
  for (size_t i = 0; i < word.size();) {
    const size_t n = utf8_char_len(word, i);
    syms.push_back(word.substr(i, n));
    i += n;
  }
  for (;;) {
    int best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = rank.find({syms[i], syms[i + 1]});
      if (it != rank.end() && (best < 0 || it->second < best)) best = it->second, at = i;
    }
    if (best < 0) return syms;
    syms[at] += syms[at + 1];
    syms.erase(syms.begin() + long(at) + 1);
  }
}

}  // namespace

TEST(BpeTokenizer, HandWorkedIds) {
  // Pre-tokens (GPT-2 regex): "the" " hello" " theo" " elo" " lll".
  // "the":    t h e -> (h,e) rank 1 -> t he; (t,he) has no rank.          [116 257]
  // " hello": Ġ h e l l o -> he (r1) -> ll (r3, beats lo r6) -> llo (r4)
  //           -> hello (r5); (Ġ,hello) has none.                          [32 261]
  // " theo":  Ġt (r0) -> he (r1) -> Ġthe (r2); (Ġthe,o) none.              [258 111]
  // " elo":   (e,l) r7 vs (l,o) r6: the lower rank wins though it is not
  //           leftmost -> Ġ e lo.                                          [32 101 262]
  // " lll":   two (l,l) r3: the leftmost merges -> Ġ ll l.                 [32 259 108]
  const Ids want{116, 257, 32, 261, 258, 111, 32, 101, 262, 32, 259, 108};
  for (bool pair_form : {false, true}) {
    BpeTokenizer t(test::byte_level_doc(hand_merges(), pair_form), "tok.json");
    EXPECT_EQ(t.vocab_size(), 264);
    EXPECT_EQ(t.num_merges(), 8u);
    EXPECT_EQ(t.encode("the hello theo elo lll", false), want) << "pair form " << pair_form;
    EXPECT_EQ(t.decode(want), "the hello theo elo lll");
    EXPECT_EQ(t.token_to_piece(258), " the");
    EXPECT_EQ(t.bos_id(), -1);
  }
}

TEST(BpeTokenizer, SpecialTokensSplitOutLiterally) {
  json doc = test::byte_level_doc(hand_merges());
  doc["added_tokens"] = {{{"id", 264}, {"content", "<|eos|>"}, {"special", true}},
                         {{"id", 265}, {"content", "<|bos|>"}, {"special", true}},
                         {{"id", 266}, {"content", "<|eos|>x"}, {"special", true}}};
  BpeTokenizer t(doc, "tok.json");
  EXPECT_EQ(t.bos_id(), 265);
  EXPECT_EQ(t.eos_id(), 264);
  // "hello" -> he, ll, llo, hello = 261; "<|eos|>" -> 264; "the" -> [116 257]. The longer
  // "<|eos|>x" wins where it matches: then "the" follows directly.
  EXPECT_EQ(t.encode("hello<|eos|>the", true), (Ids{265, 261, 264, 116, 257}));
  EXPECT_EQ(t.encode("<|eos|>xthe<|eos|>", false), (Ids{266, 116, 257, 264}));
  EXPECT_EQ(t.decode(Ids{265, 261, 264}), "<|bos|>hello<|eos|>");
  EXPECT_EQ(t.token_to_piece(264), "<|eos|>");
  // A half-written special token is plain text: "<|eo" is cut by the GPT-2 regex.
  EXPECT_EQ(t.encode("<|eo", false), (Ids{'<', '|', 'e', 'o'}));
}

TEST(BpeTokenizer, FastMergesEqualNaiveReference) {
  std::mt19937 rng(11);
  const std::vector<std::string> alphabet = {"a", "b", "c"};
  // Random merges over growing tokens. "é" is the bytes C3 A9, spelt "Ã" "©" byte-level.
  std::vector<std::string> known = {"a", "b", "c", G, "\xC3\x83", "\xC2\xA9"};
  std::vector<std::pair<std::string, std::string>> merges;
  std::map<std::pair<std::string, std::string>, int> rank;
  while (merges.size() < 300) {
    const std::string a = known[rng() % known.size()], b = known[rng() % known.size()];
    if (rank.count({a, b}) || (a + b).size() > 24) continue;
    rank[{a, b}] = int(merges.size());
    merges.push_back({a, b});
    known.push_back(a + b);
  }
  for (bool use_regex : {false, true}) {
    BpeTokenizer t(test::byte_level_doc(merges, false, use_regex), "tok.json");
    for (int n = 0; n < 40; ++n) {
      std::string text;
      const size_t len = 1 + rng() % 400;
      for (size_t i = 0; i < len; ++i) {
        const int k = int(rng() % 5);
        text += k == 3 ? " " : k == 4 ? "\xC3\xA9" : alphabet[size_t(k)];
      }
      // Without the regex the whole text is one piece; with it, compare piece by piece.
      std::vector<std::string> pieces;
      json node = test::byte_level_doc({}, false, use_regex)["pre_tokenizer"];
      PreTokenizer(node, "p", JsonFields("t")).split(text, true, pieces);
      Ids want;
      for (const std::string& p : pieces) {
        for (const std::string& s : naive_bpe(p, rank)) want.push_back(t.token_id(s));
      }
      ASSERT_EQ(t.encode(text, false), want) << text;
      ASSERT_EQ(t.decode(want), text);
    }
  }
}

TEST(BpeTokenizer, RoundTripsArbitraryBytes) {
  BpeTokenizer t(test::byte_level_doc(hand_merges()), "tok.json");
  const std::vector<std::string> samples = {
      "", " ", "\n\n\t  x", "héllo wörld", "世界你好，世界", "🎉🎉 party 🧑‍🤝‍🧑",
      "e\xCC\x81 combining", "\xFF\xFE invalid \xC3 utf8 \xED\xA0\x80", std::string(3, '\0')};
  for (const std::string& s : samples) EXPECT_EQ(t.decode(t.encode(s, false)), s) << s;
  std::mt19937 rng(5);
  for (int n = 0; n < 100; ++n) {
    std::string s(size_t(rng() % 64), '\0');
    for (char& c : s) c = char(rng());
    ASSERT_EQ(t.decode(t.encode(s, false)), s);
  }
  // A long run of spaces exercises the regex's backtracking over \s+(?!\S).
  const std::string spaces(100000, ' ');
  const std::string long_text = "a" + spaces + "b";
  EXPECT_EQ(t.decode(t.encode(long_text, false)), long_text);
}

TEST(BpeTokenizer, Gpt2AndLlama3SplitPatterns) {
  const std::string gpt2 =
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
  // Two spaces before "!!": \s+(?!\S) can only take the first, " !!" takes the second.
  EXPECT_EQ(pieces_of(gpt2, "Hello world's 123  !!"),
            (std::vector<std::string>{"Hello", " world", "'s", " 123", " ", " !!"}));
  // \p{L} must know é and CJK as letters; the emoji is "other".
  EXPECT_EQ(pieces_of(gpt2, "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x8E\x89"),
            (std::vector<std::string>{"h\xC3\xA9llo", " \xE4\xB8\x96\xE7\x95\x8C",
                                      " \xF0\x9F\x8E\x89"}));
  const std::string llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  // 'M matches case-insensitively; digits go in threes; the space before them stands alone.
  EXPECT_EQ(pieces_of(llama3, "I'M 12345 ok\n\nyes"),
            (std::vector<std::string>{"I", "'M", " ", "123", "45", " ok", "\n\n", "yes"}));
}

TEST(BpeTokenizer, SplitBehaviors) {
  auto run = [](const char* behavior, bool invert) {
    json node = {{"type", "Split"},
                 {"pattern", {{"String", "-"}}},
                 {"behavior", behavior},
                 {"invert", invert}};
    PreTokenizer pre(node, "p", JsonFields("t"));
    std::vector<std::string> out;
    pre.split("a-b--c", true, out);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(run("Removed", false), (V{"a", "b", "c"}));
  EXPECT_EQ(run("Isolated", false), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(run("MergedWithPrevious", false), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(run("MergedWithNext", false), (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(run("Contiguous", false), (V{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(run("Removed", true), (V{"-", "-", "-"}));
}

TEST(BpeTokenizer, MetaspaceWithByteFallback) {
  // A Llama-2-like vocabulary: pieces with "▁", byte tokens, unk. Text "ab é":
  // Metaspace turns it into "▁ab▁é" and splits before each ▁: "▁ab", "▁é".
  // "▁ab": ▁ a b -> (a,b) rank 0 -> ▁ ab -> (▁,ab) rank 1 -> ▁ab = 6.
  // "▁é":  ▁ é; no merge: ▁ = 1, é is no piece -> byte fallback C3 A9 = 4, 5.
  const std::string M = "\xE2\x96\x81";
  json vocab = {{"<unk>", 0}, {M, 1}, {"a", 2}, {"b", 3}, {"<0xC3>", 4}, {"<0xA9>", 5},
                {M + "ab", 6}, {"ab", 7}};
  json doc = {{"model",
               {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", M + " ab"}},
                {"unk_token", "<unk>"}, {"byte_fallback", true}}},
              {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", M},
                                 {"prepend_scheme", "always"}}},
              {"decoder", {{"type", "Sequence"},
                           {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", M}}},
                                          {"content", " "}},
                                         {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                         {{"type", "Strip"}, {"content", " "}, {"start", 1},
                                          {"stop", 0}}}}}}};
  BpeTokenizer t(doc, "tok.json");
  EXPECT_EQ(t.encode("ab \xC3\xA9", false), (Ids{6, 1, 4, 5}));
  // Decoding: "▁ab" "▁" C3 A9 -> " ab é"; Strip drops the one leading space.
  EXPECT_EQ(t.decode(Ids{6, 1, 4, 5}), "ab \xC3\xA9");
  EXPECT_EQ(t.token_to_piece(6), " ab");
  // "z" has no piece and no byte token: unk.
  EXPECT_EQ(t.encode("z", false), (Ids{1, 0}));
}

TEST(BpeTokenizer, BrokenMergesNameTheKey) {
  auto with_merges = [](json merges) {
    json doc = test::byte_level_doc({{"a", "b"}});
    doc["model"]["merges"] = merges;
    return doc;
  };
  EXPECT_EQ(error_of(with_merges({"a b", "ab q"})),
            "tok.json: model.merges[1]: 'ab q' \xE2\x80\x94 merged token 'abq' is not in "
            "model.vocab");
  EXPECT_EQ(error_of(with_merges({"a b", "ab \xE2\x96\x81"})),
            "tok.json: model.merges[1]: 'ab \xE2\x96\x81' \xE2\x80\x94 token '\xE2\x96\x81' is "
            "not in model.vocab");
  EXPECT_EQ(error_of(with_merges({"a b c"})),
            "tok.json: model.merges[0]: 'a b c' is not two tokens separated by one space");
  EXPECT_EQ(error_of(with_merges({json::array({"a"})})),
            "tok.json: model.merges[0]: expected \"a b\" or [\"a\", \"b\"], found [\"a\"]");
}

TEST(BpeTokenizer, OtherLoadErrorsNameTheKey) {
  json doc = test::byte_level_doc({});
  doc["model"]["vocab"].erase(G);
  doc["model"]["vocab"]["not a byte"] = 32;  // keeps the ids dense
  EXPECT_NE(error_of(doc).find("model.vocab: byte 0x20 (token '" + G + "') is missing"),
            std::string::npos);
  doc = test::byte_level_doc({});
  doc["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  EXPECT_EQ(error_of(doc), "tok.json: pre_tokenizer.type 'BertPreTokenizer' is not supported");
  doc["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}}}}};
  EXPECT_NE(error_of(doc).find("pre_tokenizer.pretokenizers[0].pattern.Regex: invalid regex"),
            std::string::npos);
  doc = test::byte_level_doc({});
  doc["normalizer"] = {{"type", "NFKC"}};
  EXPECT_EQ(error_of(doc), "tok.json: normalizer.type 'NFKC' is not supported");
  doc = test::byte_level_doc({});
  doc["model"]["type"] = "Unigram";
  EXPECT_EQ(error_of(doc), "tok.json: model.type 'Unigram' is not supported (only BPE)");
  doc = test::byte_level_doc({});
  doc["model"]["vocab"]["huge"] = 2000000000;
  EXPECT_NE(error_of(doc).find("model.vocab['huge']: id 2000000000 is outside [0, 257)"),
            std::string::npos);
  doc = test::byte_level_doc({});
  doc["model"]["vocab"]["dup"] = 5;
  EXPECT_NE(error_of(doc).find("id 5 is also used by"), std::string::npos);
}

TEST(BpeTokenizer, FromFileReportsJsonErrorOffset) {
  const std::string path = (test::fresh_temp_dir() / "bpe_broken_tokenizer.json").string();
  {
    std::ofstream(path) << "{\"model\": {\"vocab\": {\"a\" 1}}}";
  }
  try {
    BpeTokenizer::from_file(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_EQ(e.offset(), 25);  // the "1" where ':' was expected
  }
  std::remove(path.c_str());
  EXPECT_THROW(BpeTokenizer::from_file(path), Error);  // missing file
}
