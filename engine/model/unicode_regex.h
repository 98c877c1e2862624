// A compiled PCRE2 pattern with Unicode classes (\p{L}, \p{N}), lookahead and possessive
// quantifiers, as Hugging Face pre-tokenizers use them. Compiled (and JIT-compiled where
// PCRE2 can) once; matching is const and thread-safe. Text need not be valid UTF-8: bytes
// that start no valid character simply never match.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mcw {

class UnicodeRegex {
 public:
  // literal: the pattern is a plain string to find, not a regex. Errors name source and
  // key ("pre_tokenizer.pattern.Regex: invalid regex at offset 3: ...").
  UnicodeRegex(std::string_view pattern, bool literal, std::string source, std::string key);
  ~UnicodeRegex();
  UnicodeRegex(const UnicodeRegex&) = delete;
  UnicodeRegex& operator=(const UnicodeRegex&) = delete;

  // Non-empty, non-overlapping matches, left to right, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> matches(std::string_view text) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*, kept out of the header
  std::string source_, key_;
};

// GPT-2's pre-tokenizer pattern (contractions, letters, digits, other, whitespace), which
// the ByteLevel pre-tokenizer applies when use_regex is set and the trainer uses.
const char* gpt2_split_pattern();

}  // namespace mcw
