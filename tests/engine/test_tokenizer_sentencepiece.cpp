// SentencePiece BPE (GGUF "llama" vocabulary): ids worked out by hand on a tiny vocabulary,
// byte fallback, decoding, and the fast merge loop against a naive highest-score scan.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>

#include "engine/core/error.h"
#include "engine/model/sentencepiece_tokenizer.h"
#include "engine/model/utf8.h"

using namespace mcw;
using Ids = std::vector<int32_t>;

namespace {

const std::string M = "\xE2\x96\x81";  // "▁"
constexpr int32_t N = 1, U = 2, C = 3, UD = 4, B = 6;

SentencePieceVocab hand_vocab() {
  SentencePieceVocab v;
  auto add = [&](std::string t, float score, int32_t type) {
    v.tokens.push_back(std::move(t));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, U);              // 0
  add("<s>", 0, C);                // 1
  add("</s>", 0, C);               // 2
  add("<0xC3>", 0, B);             // 3
  add("<0xA9>", 0, B);             // 4
  add("<0x0A>", 0, B);             // 5
  add(M, -1, N);                   // 6
  for (const char* c : {"h", "e", "l", "o", "w", "r", "d"}) add(c, -10, N);  // 7..13
  add("he", -3, N);                // 14
  add("ll", -2, N);                // 15
  add("llo", -4, N);               // 16
  add("hello", -6, N);             // 17
  add(M + "hello", -7, N);         // 18
  add("lo", -1.5f, N);             // 19
  add(M + "w", -8, N);             // 20
  add("or", -9, N);                // 21
  add("<sep>", 0, UD);             // 22
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  return v;
}

std::string error_of(SentencePieceVocab v) {
  try {
    SentencePieceTokenizer t(std::move(v), "m.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(SentencePiece, HandWorkedIds) {
  SentencePieceTokenizer t(hand_vocab(), "m.gguf");
  // "hello world" -> "▁hello▁world": ▁ h e l l o ▁ w o r l d. Scores of pairs that are
  // pieces: he -3, ll -2, lo -1.5, ▁w -8, or -9.
  //   lo (-1.5) beats ll (-2):   ▁ h e l lo ▁ w o r l d   new pair l+lo = llo -4
  //   ll is gone; he (-3):       ▁ he l lo ...            (▁he, hel: no pieces)
  //   llo (-4):                  ▁ he llo ...             new he+llo = hello -6
  //   hello (-6):                ▁ hello ...              new ▁+hello = ▁hello -7
  //   ▁hello (-7), ▁w (-8), or (-9): ▁hello ▁w or l d    (▁wor, orl: no pieces)
  EXPECT_EQ(t.encode("hello world", true), (Ids{1, 18, 20, 21, 9, 13}));
  EXPECT_EQ(t.decode(Ids{1, 18, 20, 21, 9, 13, 2}), "hello world");
  EXPECT_EQ(t.vocab_size(), 23);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
}

TEST(SentencePiece, ByteFallbackAndUnknown) {
  SentencePieceTokenizer t(hand_vocab(), "m.gguf");
  // "hé\n" -> "▁hé\n": no pair is a piece; é (C3 A9) and \n fall back to byte tokens.
  EXPECT_EQ(t.encode("h\xC3\xA9\n", false), (Ids{6, 7, 3, 4, 5}));
  EXPECT_EQ(t.decode(Ids{6, 7, 3, 4, 5}), "h\xC3\xA9\n");
  // "z" has neither a piece nor a byte token: <unk>.
  EXPECT_EQ(t.encode("z", false), (Ids{6, 0}));
  EXPECT_EQ(t.token_to_piece(18), " hello");
  EXPECT_EQ(t.token_to_piece(3), "\xC3");
  EXPECT_EQ(t.token_to_piece(1), "<s>");
  EXPECT_EQ(t.encode("", true), (Ids{1}));
  SentencePieceVocab v = hand_vocab();
  v.unk_id = -1;
  SentencePieceTokenizer no_unk(std::move(v), "m.gguf");
  EXPECT_THROW(no_unk.encode("z", false), Error);
}

TEST(SentencePiece, UserDefinedPiecesMatchLiterally) {
  SentencePieceTokenizer t(hand_vocab(), "m.gguf");
  // "he<sep>he": "▁he" -> ▁ he (6 14), <sep> (22), then "he" without a dummy prefix (14).
  // Control pieces are not matched in text: "<s>" is spelt out ('<' and '>' unknown).
  EXPECT_EQ(t.encode("he<sep>he", false), (Ids{6, 14, 22, 14}));
  EXPECT_EQ(t.decode(Ids{6, 14, 22, 14}), "he<sep>he");
  // "▁<s>": no pair is a piece; '<', 's', '>' have no piece or byte token.
  EXPECT_EQ(t.encode("<s>", false), (Ids{6, 0, 0, 0}));
}

TEST(SentencePiece, NoDummyPrefix) {
  SentencePieceVocab v = hand_vocab();
  v.add_dummy_prefix = false;
  SentencePieceTokenizer t(std::move(v), "m.gguf");
  // "hello" -> h e l l o: lo, he, llo, hello (17); without ▁ in front it stays 17.
  EXPECT_EQ(t.encode("hello", false), (Ids{17}));
  EXPECT_EQ(t.decode(Ids{6, 17}), " hello");
}

TEST(SentencePiece, FastMergesEqualNaiveReference) {
  std::mt19937 rng(3);
  const std::vector<std::string> chars = {"a", "b", " ", "\xC3\xA9", "c"};
  SentencePieceVocab v;
  std::map<std::string, float> score;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.tokens.push_back(name), v.scores.push_back(0), v.types.push_back(B);
  }
  std::vector<std::string> known = {"a", "b", M, "\xC3\xA9"};  // "c" only by byte fallback
  for (const std::string& k : known) {
    v.tokens.push_back(k), v.scores.push_back(-100), v.types.push_back(N), score[k] = -100;
  }
  while (v.tokens.size() < 256 + 200) {
    const std::string t = known[rng() % known.size()] + known[rng() % known.size()];
    if (score.count(t) || t.size() > 20) continue;
    const float s = -float(rng() % 50);  // repeated scores make ties
    v.tokens.push_back(t), v.scores.push_back(s), v.types.push_back(N), score[t] = s;
    known.push_back(t);
  }
  SentencePieceTokenizer tok(v, "m.gguf");
  auto id_of = [&](const std::string& s) {
    for (size_t i = 256; i < v.tokens.size(); ++i) {
      if (v.tokens[i] == s) return int32_t(i);
    }
    return int32_t(-1);
  };
  for (int n = 0; n < 60; ++n) {
    std::string text;
    for (size_t i = 0, len = rng() % 300; i < len; ++i) text += chars[rng() % chars.size()];
    // Reference: "▁" + text with spaces marked, split into characters, then repeatedly
    // merge the highest-scoring adjacent pair (leftmost on ties).
    std::string marked = M;
    for (char ch : text) marked += ch == ' ' ? M : std::string(1, ch);
    std::vector<std::string> syms;
    for (size_t i = 0; i < marked.size();) {
      const size_t k = utf8_char_len(marked, i);
      syms.push_back(marked.substr(i, k));
      i += k;
    }
    for (;;) {
      int best = -1;
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        auto it = score.find(syms[i] + syms[i + 1]);
        if (it != score.end() && (best < 0 || it->second > score[syms[size_t(best)] +
                                                                 syms[size_t(best) + 1]])) {
          best = int(i);
        }
      }
      if (best < 0) break;
      syms[size_t(best)] += syms[size_t(best) + 1];
      syms.erase(syms.begin() + best + 1);
    }
    Ids want;
    for (const std::string& s : syms) {
      if (score.count(s)) {
        want.push_back(id_of(s));
      } else {
        for (char ch : s) want.push_back(int32_t(static_cast<unsigned char>(ch)));
      }
    }
    ASSERT_EQ(tok.encode(text, false), want) << text;
    ASSERT_EQ(tok.decode(want), text);
  }
}

TEST(SentencePiece, RoundTripsUtf8) {
  SentencePieceVocab v = hand_vocab();
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.tokens.push_back(name), v.scores.push_back(0), v.types.push_back(B);
  }
  SentencePieceTokenizer t(std::move(v), "m.gguf");
  for (const std::string s : {"hello world", "  two  spaces ", "\xE4\xB8\x96\xE7\x95\x8C",
                              "\xF0\x9F\x8E\x89 e\xCC\x81", "\xFF\xC3 bad"}) {
    EXPECT_EQ(t.decode(t.encode(s, true)), s) << s;
  }
}

TEST(SentencePiece, LoadErrorsNameTheKey) {
  SentencePieceVocab v = hand_vocab();
  v.scores.pop_back();
  EXPECT_EQ(error_of(v), "m.gguf: tokenizer.ggml.scores: 22 scores for 23 tokens");
  v = hand_vocab();
  v.types[5] = 9;
  EXPECT_EQ(error_of(v), "m.gguf: tokenizer.ggml.token_type[5]: unknown token type 9");
  v = hand_vocab();
  v.tokens[3] = "<0xZZ>";
  EXPECT_EQ(error_of(v), "m.gguf: tokenizer.ggml.tokens[3]: byte token '<0xZZ>' is not <0xXX>");
  v = hand_vocab();
  v.bos_id = 23;
  EXPECT_EQ(error_of(v), "m.gguf: tokenizer.ggml.bos_token_id: id 23 is outside [0, 23)");
  v = hand_vocab();
  v.scores[7] = std::nanf("");
  EXPECT_EQ(error_of(v), "m.gguf: tokenizer.ggml.scores[7]: not a finite number");
  EXPECT_EQ(error_of(SentencePieceVocab{}), "m.gguf: tokenizer.ggml.tokens: empty vocabulary");
}
