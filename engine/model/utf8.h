// Just enough UTF-8 for tokenizers: splitting text into characters without ever rejecting
// it (a byte that starts no valid sequence is a one-byte "character" of its own, so any
// byte string survives a round trip), and encoding code points.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mcw {

// Length of the character starting at s[i]: 1..4 for a well-formed sequence (no overlong
// forms, surrogates or values above U+10FFFF), 1 for any byte that starts none.
size_t utf8_char_len(std::string_view s, size_t i);

// Appends the UTF-8 encoding of cp (which must be <= 0x10FFFF and not a surrogate).
void append_utf8(std::string& out, uint32_t cp);

// Decodes the well-formed character at s[i]; returns -1 where utf8_char_len would give a
// lone byte that is not ASCII.
int32_t utf8_decode_at(std::string_view s, size_t i);

}  // namespace mcw
