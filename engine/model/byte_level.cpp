#include "engine/model/byte_level.h"

#include <array>

#include "engine/model/utf8.h"

namespace mcw {

namespace {

// Bytes that are printable in Latin-1 keep their own code point; the others (controls,
// space, DEL, NBSP, soft hyphen) are moved in order to U+0100 onwards.
struct Alphabet {
  std::array<std::string, 256> chars;
  std::array<int16_t, 512> byte_of_cp;  // code point -> byte, -1 if not in the alphabet
  Alphabet() {
    byte_of_cp.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? b : next++;
      append_utf8(chars[b], cp);
      byte_of_cp[cp] = int16_t(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

const std::string& byte_level_char(uint8_t b) { return alphabet().chars[b]; }

std::string byte_level_encode(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  for (char c : raw) out += byte_level_char(uint8_t(c));
  return out;
}

std::string byte_level_decode(std::string_view text, bool* all_in_alphabet) {
  const Alphabet& a = alphabet();
  std::string out;
  out.reserve(text.size());
  bool all = true;
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_char_len(text, i);
    const int32_t cp = utf8_decode_at(text, i);
    if (cp >= 0 && cp < 512 && a.byte_of_cp[cp] >= 0) {
      out += char(a.byte_of_cp[cp]);
    } else {
      out.append(text.substr(i, n));
      all = false;
    }
    i += n;
  }
  if (all_in_alphabet) *all_in_alphabet = all;
  return out;
}

}  // namespace mcw
