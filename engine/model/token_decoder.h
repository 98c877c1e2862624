// The decoder stage of a Hugging Face tokenizer.json: turns the vocabulary strings of a run
// of tokens back into text. Supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse,
// Strip and Sequence; a missing decoder concatenates. Unlike Hugging Face, ByteFallback
// keeps bytes that do not form valid UTF-8 instead of replacing them with U+FFFD, so byte
// strings survive a round trip.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mcw {

class JsonFields;

class TokenDecoder {
 public:
  TokenDecoder(const nlohmann::json& node, const std::string& key, const JsonFields& fields);
  ~TokenDecoder();
  // at_start: the tokens begin the text, so steps that drop a leading space (Strip,
  // Metaspace's prefix) apply; false for a single token shown on its own.
  std::string decode(std::vector<std::string> tokens, bool at_start) const;

 private:
  struct Step;
  void parse(const nlohmann::json& node, const std::string& key, const JsonFields& fields);
  std::vector<Step> steps_;
};

}  // namespace mcw
