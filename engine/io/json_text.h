// Parsing JSON that came from an untrusted file. Before nlohmann sees the text, a quick
// scan bounds the nesting depth (a hostile "[[[[..." then costs neither stack nor memory)
// and checks UTF-8, so the user gets one line in words rather than a parser code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace mcw {

// Offset of the first byte that does not belong to a well-formed UTF-8 sequence
// (overlong forms, surrogates and values past U+10FFFF count as ill-formed).
std::optional<size_t> find_invalid_utf8(std::string_view text);

// Offset of the first '[' or '{' outside strings that opens nesting level max_depth + 1.
std::optional<size_t> find_excess_nesting(std::string_view text, int max_depth);

// A name from a file made fit for a one-line message: control characters escaped as
// \xNN, and cut to max_chars with "..." so a hostile megabyte-long name stays readable.
std::string printable(std::string_view name, size_t max_chars = 120);

struct JsonTextOptions {
  int max_depth = 64;
  bool reject_duplicate_keys = false;
  // Names the text in messages, e.g. "the header" or "config.json".
  std::string what = "the JSON text";
  // Appended to the invalid-UTF-8 message to say which strings must be UTF-8.
  std::string utf8_hint;
};

// Parses `text`, which starts at byte `base_offset` of `path`. Throws mcw::Error naming
// the path, the absolute byte offset where known, and the problem.
nlohmann::ordered_json parse_json_text(std::string_view text, const std::string& path,
                                       int64_t base_offset, const JsonTextOptions& options);

}  // namespace mcw
