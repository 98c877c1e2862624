#include "engine/model/utf8.h"

namespace mcw {

static bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

size_t utf8_char_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  const size_t left = s.size() - i;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return left >= 2 && is_cont(b(1)) ? 2 : 1;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !is_cont(b(1)) || !is_cont(b(2))) return 1;
    if (c == 0xE0 && b(1) < 0xA0) return 1;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 1;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !is_cont(b(1)) || !is_cont(b(2)) || !is_cont(b(3))) return 1;
    if (c == 0xF0 && b(1) < 0x90) return 1;  // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 1;  // above U+10FFFF
    return 4;
  }
  return 1;
}

int32_t utf8_decode_at(std::string_view s, size_t i) {
  const size_t n = utf8_char_len(s, i);
  const auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i + k])); };
  switch (n) {
    case 2: return int32_t(((b(0) & 0x1F) << 6) | (b(1) & 0x3F));
    case 3: return int32_t(((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F));
    case 4:
      return int32_t(((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) |
                     (b(3) & 0x3F));
    default: return b(0) < 0x80 ? int32_t(b(0)) : -1;
  }
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace mcw
