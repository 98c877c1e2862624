#include "engine/train/byte_tokenizer.h"

#include "engine/core/error.h"

namespace mcw {

std::vector<int32_t> byte_tokenize(std::string_view text) {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = int32_t(uint8_t(text[i]));
  return ids;
}

std::string byte_detokenize(const std::vector<int32_t>& ids) {
  std::string s(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= kByteVocabSize)
      throw Error("", "token id " + std::to_string(ids[i]) + " is not a byte");
    s[i] = char(uint8_t(ids[i]));
  }
  return s;
}

static bool printable(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

std::string byte_level_char(uint8_t b) {
  uint32_t cp = b;
  if (!printable(b)) {
    cp = 256;
    for (int x = 0; x < b; ++x) cp += printable(x) ? 0 : 1;
  }
  std::string out;  // UTF-8 of a code point below 0x800
  if (cp < 0x80) {
    out += char(cp);
  } else {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  }
  return out;
}

nlohmann::ordered_json byte_tokenizer_json() {
  using json = nlohmann::ordered_json;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_char(uint8_t(b))] = b;
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = json::array();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"},
                        {"add_prefix_space", false},
                        {"trim_offsets", false},
                        {"use_regex", false}};
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"},
                  {"add_prefix_space", false},
                  {"trim_offsets", false},
                  {"use_regex", false}};
  j["model"] = {{"type", "BPE"},           {"dropout", nullptr},
                {"unk_token", nullptr},     {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                {"byte_fallback", false},   {"vocab", vocab},
                {"merges", json::array()}};
  return j;
}

}  // namespace mcw
