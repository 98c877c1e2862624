#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/model/unicode_regex.h"

#include <pcre2.h>

#include <memory>

#include "engine/core/error.h"
#include "engine/model/utf8.h"

namespace mcw {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  const int n = pcre2_get_error_message(code, buf, sizeof(buf));
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf));
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

}  // namespace

const char* gpt2_split_pattern() {
  return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
}

UnicodeRegex::UnicodeRegex(std::string_view pattern, bool literal, std::string source,
                           std::string key)
    : source_(std::move(source)), key_(std::move(key)) {
  // PCRE2_LITERAL admits no UCP (it has no classes to apply it to).
  uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &err, &err_offset, nullptr);
  if (!code) {
    throw Error(source_, key_ + ": invalid regex at offset " + std::to_string(err_offset) +
                             ": " + pcre2_message(err));
  }
  // JIT is only a speed-up; without it (unsupported CPU, no exec memory) the interpreter runs.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

UnicodeRegex::~UnicodeRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::pair<size_t, size_t>> UnicodeRegex::matches(std::string_view text) const {
  auto* code = static_cast<pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(
      pcre2_match_data_create_from_pattern(code, nullptr));
  if (!md) throw std::bad_alloc();
  std::vector<std::pair<size_t, size_t>> out;
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(code, subject, text.size(), pos, 0, md.get(), nullptr);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      // The JIT's small fixed stack can run out on pathological input; the interpreter
      // keeps its backtracking state on the heap.
      rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_JIT, md.get(), nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) throw Error(source_, key_ + ": regex matching failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      // An empty match makes no piece; step one character past it so the scan advances.
      pos = b + (b < text.size() ? utf8_char_len(text, b) : 1);
    }
  }
  return out;
}

}  // namespace mcw
