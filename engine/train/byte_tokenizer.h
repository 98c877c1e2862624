// Byte-level tokenization used by training until a trained BPE vocabulary exists: token
// id = byte value, vocabulary 256, no special tokens. Kept behind these functions so
// that the trainer can switch to the Tokenizer interface later.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace mcw {

inline constexpr int64_t kByteVocabSize = 256;

std::vector<int32_t> byte_tokenize(std::string_view text);
// Throws mcw::Error on an id outside 0..255.
std::string byte_detokenize(const std::vector<int32_t>& ids);

// A Hugging Face tokenizer.json describing the same vocabulary: a byte-level BPE with no
// merges, whose 256 tokens are the GPT-2 byte-to-unicode characters in byte order, so
// `tokenizers` maps every byte b to id b.
nlohmann::ordered_json byte_tokenizer_json();

// The character (UTF-8) that byte-level BPE uses for byte b: printable Latin-1 bytes stand
// for themselves, the other 68 take code points 256, 257, ... in byte order.
std::string byte_level_char(uint8_t b);

}  // namespace mcw
