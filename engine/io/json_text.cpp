#include "engine/io/json_text.h"

#include <cstdio>
#include <set>
#include <vector>

#include "engine/core/error.h"

namespace mcw {

std::optional<size_t> find_invalid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // The second byte's range excludes overlong forms (E0, F0), UTF-16 surrogates (ED)
    // and code points past U+10FFFF (F4); C0, C1 and F5..FF never start a sequence.
    size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return std::nullopt;
}

std::optional<size_t> find_excess_nesting(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if (c == ']' || c == '}') {
      --depth;  // unbalanced brackets are the parser's to report
    }
  }
  return std::nullopt;
}

std::string printable(std::string_view name, size_t max_chars) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (out.size() >= max_chars && (c & 0xC0) != 0x80) {  // never cut a UTF-8 sequence
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", unsigned(c));
      out += esc;
    } else {
      out += char(c);
    }
  }
  return out;
}

// nlohmann's what() starts with "[json.exception.parse_error.101] "; users need the rest.
static std::string without_exception_tag(const char* what) {
  std::string s = what;
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find("] ");
    if (close != std::string::npos) s.erase(0, close + 2);
  }
  return s;
}

nlohmann::ordered_json parse_json_text(std::string_view text, const std::string& path,
                                       int64_t base_offset, const JsonTextOptions& options) {
  using Json = nlohmann::ordered_json;
  if (auto at = find_excess_nesting(text, options.max_depth))
    throw Error(path, options.what + " nests arrays/objects deeper than " +
                          std::to_string(options.max_depth) + " levels",
                base_offset + int64_t(*at));
  if (auto at = find_invalid_utf8(text)) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02x", unsigned(static_cast<unsigned char>(text[*at])));
    std::string msg = "invalid UTF-8 in " + options.what + " (byte " + byte + ")";
    if (!options.utf8_hint.empty()) msg += ": " + options.utf8_hint;
    throw Error(path, msg, base_offset + int64_t(*at));
  }

  // One set of seen keys per open object, innermost last.
  std::vector<std::set<std::string>> open_objects;
  Json::parser_callback_t check_keys = nullptr;
  if (options.reject_duplicate_keys) {
    check_keys = [&](int, Json::parse_event_t event, Json& value) {
      if (event == Json::parse_event_t::object_start) {
        open_objects.emplace_back();
      } else if (event == Json::parse_event_t::object_end) {
        if (!open_objects.empty()) open_objects.pop_back();
      } else if (event == Json::parse_event_t::key && !open_objects.empty()) {
        const std::string& key = value.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second)
          throw Error(path, "duplicate key '" + printable(key) + "' in " + options.what,
                      base_offset);
      }
      return true;
    };
  }
  try {
    return Json::parse(text.begin(), text.end(), check_keys);
  } catch (const Json::parse_error& e) {
    // e.byte counts from 1 and names the last character read.
    const int64_t at = base_offset + (e.byte > 0 ? int64_t(e.byte) - 1 : 0);
    throw Error(path, options.what + " is not valid JSON: " + without_exception_tag(e.what()), at);
  } catch (const Json::exception& e) {  // a number out of range (1e400) is not a parse_error
    throw Error(path, options.what + " is not valid JSON: " + without_exception_tag(e.what()),
                base_offset);
  }
}

}  // namespace mcw
