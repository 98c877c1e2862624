#include "engine/model/byte_tokenizer.h"

#include "engine/model/byte_level.h"

namespace mcw {

ByteTokenizer::ByteTokenizer(bool with_bos, bool with_eos) {
  if (with_bos) bos_ = vocab_size_++;
  if (with_eos) eos_ = vocab_size_++;
}

std::vector<int32_t> ByteTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() + 1);
  if (add_bos && bos_ >= 0) ids.push_back(bos_);
  for (char c : text) ids.push_back(int32_t(static_cast<unsigned char>(c)));
  return ids;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) throw_bad_token_id(id, vocab_size_);
    if (id < 256) out += char(id);
  }
  return out;
}

std::string ByteTokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= vocab_size_) throw_bad_token_id(id, vocab_size_);
  if (id < 256) return std::string(1, char(id));
  return id == bos_ ? "<|bos|>" : "<|eos|>";
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
