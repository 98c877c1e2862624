// The normalizer and pre-tokenizer stages of a Hugging Face tokenizer.json: text between
// added tokens is normalized, then cut into pieces ("words") that BPE encodes one by one.
// Supported pre-tokenizers: ByteLevel (add_prefix_space, use_regex), Split (Regex or String
// pattern, every behavior, invert), Metaspace (replacement, prepend_scheme, split), Digits,
// Whitespace, WhitespaceSplit, and Sequence of these. Normalizers: Prepend, Replace,
// Sequence. Anything else is an error naming the key, never silently ignored.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace mcw {

class JsonFields;
class UnicodeRegex;

class Normalizer {
 public:
  // node may be null (no normalizer). key is the node's path for errors.
  Normalizer(const nlohmann::json& node, const std::string& key, const JsonFields& fields);
  ~Normalizer();
  std::string apply(std::string text) const;

 private:
  struct Step;
  void parse(const nlohmann::json& node, const std::string& key, const JsonFields& fields);
  std::vector<Step> steps_;
};

class PreTokenizer {
 public:
  PreTokenizer(const nlohmann::json& node, const std::string& key, const JsonFields& fields);
  ~PreTokenizer();
  // Appends the pieces of one text segment. first_segment: the segment starts the input
  // (Metaspace's prepend_scheme "first" prepends only there).
  void split(std::string_view text, bool first_segment, std::vector<std::string>& out) const;
  // Whether a ByteLevel step maps bytes to GPT-2's alphabet (the vocabulary is byte-level).
  bool byte_level() const { return byte_level_; }

 private:
  struct Step;
  void parse(const nlohmann::json& node, const std::string& key, const JsonFields& fields);
  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace mcw
