// Byte tokenizer, UTF-8 splitting and GPT-2's byte-level alphabet, checked against values
// worked out from their definitions.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "engine/core/error.h"
#include "engine/model/byte_level.h"
#include "engine/model/byte_tokenizer.h"
#include "engine/model/utf8.h"

using namespace mcw;

TEST(TokenizerByte, IdsAreBytesAndSpecialsFollow) {
  ByteTokenizer t(true, true);
  EXPECT_EQ(t.vocab_size(), 258);
  EXPECT_EQ(t.bos_id(), 256);
  EXPECT_EQ(t.eos_id(), 257);
  EXPECT_EQ(t.encode("A\xff", true), (std::vector<int32_t>{256, 65, 255}));
  EXPECT_EQ(t.encode("A", false), (std::vector<int32_t>{65}));
  const std::vector<int32_t> ids{256, 104, 105, 257};
  EXPECT_EQ(t.decode(ids), "hi");
  EXPECT_EQ(t.token_to_piece(256), "<|bos|>");
  const std::vector<int32_t> bad{258};
  EXPECT_THROW(t.decode(bad), Error);
  ByteTokenizer plain(false, false);
  EXPECT_EQ(plain.vocab_size(), 256);
  EXPECT_EQ(plain.bos_id(), -1);
  EXPECT_EQ(plain.encode("x", true), (std::vector<int32_t>{120}));
}

TEST(TokenizerByte, RoundTripsAnyBytes) {
  ByteTokenizer t;
  std::mt19937 rng(7);
  for (int n = 0; n < 50; ++n) {
    std::string s(size_t(rng() % 200), '\0');
    for (char& c : s) c = char(rng());
    EXPECT_EQ(t.decode(t.encode(s, true)), s);
  }
}

TEST(TokenizerUtf8, CharacterLengths) {
  // "a", "é" (C3 A9), "世" (E4 B8 96), "🎉" (F0 9F 8E 89), then broken sequences that
  // must each come out as single bytes.
  const std::string s = "a\xC3\xA9\xE4\xB8\x96\xF0\x9F\x8E\x89";
  EXPECT_EQ(utf8_char_len(s, 0), 1u);
  EXPECT_EQ(utf8_char_len(s, 1), 2u);
  EXPECT_EQ(utf8_char_len(s, 3), 3u);
  EXPECT_EQ(utf8_char_len(s, 6), 4u);
  EXPECT_EQ(utf8_decode_at(s, 6), 0x1F389);
  EXPECT_EQ(utf8_char_len("\xC3", 0), 1u);          // truncated
  EXPECT_EQ(utf8_char_len("\xC0\x80", 0), 1u);      // overlong NUL
  EXPECT_EQ(utf8_char_len("\xED\xA0\x80", 0), 1u);  // surrogate D800
  EXPECT_EQ(utf8_char_len("\xF4\x90\x80\x80", 0), 1u);  // above U+10FFFF
  EXPECT_EQ(utf8_char_len("\x80", 0), 1u);
  EXPECT_EQ(utf8_decode_at("\x80", 0), -1);
  std::string out;
  for (uint32_t cp : {0x41u, 0xE9u, 0x4E16u, 0x1F389u}) append_utf8(out, cp);
  EXPECT_EQ(out, "A\xC3\xA9\xE4\xB8\x96\xF0\x9F\x8E\x89");
}

TEST(TokenizerByteLevel, AlphabetMatchesGpt2Definition) {
  // Printable Latin-1 bytes keep their code point; the 68 others are renumbered from
  // U+0100 in byte order: 0x00..0x20 -> U+0100..U+0120, 0x7F -> U+0121,
  // 0x80..0xA0 -> U+0122..U+0142, 0xAD -> U+0143.
  EXPECT_EQ(byte_level_char(' '), "\xC4\xA0");     // U+0120 "Ġ"
  EXPECT_EQ(byte_level_char('\n'), "\xC4\x8A");    // U+010A "Ċ"
  EXPECT_EQ(byte_level_char(0), "\xC4\x80");       // U+0100
  EXPECT_EQ(byte_level_char(0x7F), "\xC4\xA1");    // U+0121
  EXPECT_EQ(byte_level_char(0xA0), "\xC5\x82");    // U+0142
  EXPECT_EQ(byte_level_char(0xAD), "\xC5\x83");    // U+0143
  EXPECT_EQ(byte_level_char('a'), "a");
  EXPECT_EQ(byte_level_char(0xE9), "\xC3\xA9");    // U+00E9 "é" stays
  std::set<std::string> distinct;
  std::string all;
  for (int b = 0; b < 256; ++b) {
    distinct.insert(byte_level_char(uint8_t(b)));
    all += char(b);
  }
  EXPECT_EQ(distinct.size(), 256u);
  bool ok = false;
  EXPECT_EQ(byte_level_decode(byte_level_encode(all), &ok), all);
  EXPECT_TRUE(ok);
  EXPECT_EQ(byte_level_decode("\xE2\x96\x81", &ok), "\xE2\x96\x81");  // "▁" is not in it
  EXPECT_FALSE(ok);
}
