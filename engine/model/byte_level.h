// GPT-2's byte-level alphabet: every byte 0..255 is given a printable Unicode character so
// that byte-level BPE vocabularies can be stored as JSON strings (a space is "Ġ", a newline
// "Ċ"). Tokenizers work on raw bytes internally and use this only at the file boundary.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mcw {

// The character standing for byte b, as UTF-8.
const std::string& byte_level_char(uint8_t b);

// Raw bytes -> the alphabet's characters.
std::string byte_level_encode(std::string_view raw);

// The alphabet's characters -> raw bytes. A character outside the alphabet (found in
// vocabularies for tokens only reachable as whole added tokens) is kept as its own UTF-8
// bytes; *all_in_alphabet (if given) says whether that happened.
std::string byte_level_decode(std::string_view text, bool* all_in_alphabet = nullptr);

}  // namespace mcw
