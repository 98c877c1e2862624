#include "engine/model/token_decoder.h"

#include <memory>

#include "engine/model/byte_level.h"
#include "engine/model/json_fields.h"
#include "engine/model/unicode_regex.h"

namespace mcw {

using nlohmann::json;

struct TokenDecoder::Step {
  enum Kind { ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip } kind;
  std::string from, to;              // Replace (String); Metaspace: from = replacement
  std::shared_ptr<UnicodeRegex> re;  // Replace (Regex)
  bool strip_prefix = true;          // Metaspace
  std::string content;               // Strip
  int64_t start = 0, stop = 0;       // Strip
};

namespace {

// "<0x0A>" -> 0x0A; -1 for anything else.
int byte_token_value(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = t[i];
    const int d = c >= '0' && c <= '9' ? c - '0'
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                         : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(text, pos, hit - pos);
    out += to;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

}  // namespace

TokenDecoder::TokenDecoder(const json& node, const std::string& key, const JsonFields& fields) {
  if (!node.is_null()) parse(node, key, fields);
}
TokenDecoder::~TokenDecoder() = default;

void TokenDecoder::parse(const json& node, const std::string& key, const JsonFields& f) {
  f.object(node, key);
  const std::string type = f.string_field(node, key, "type");
  Step s{};
  if (type == "Sequence") {
    const std::string k = json_key(key, "decoders");
    const json* list = JsonFields::find(node, "decoders");
    if (!list) f.fail(k, "missing");
    f.array(*list, k);
    for (size_t i = 0; i < list->size(); ++i) {
      parse((*list)[i], k + "[" + std::to_string(i) + "]", f);
    }
    return;
  } else if (type == "ByteLevel") {
    s.kind = Step::ByteLevel;
  } else if (type == "ByteFallback") {
    s.kind = Step::ByteFallback;
  } else if (type == "Fuse") {
    s.kind = Step::Fuse;
  } else if (type == "Metaspace") {
    s.kind = Step::Metaspace;
    s.from = f.string_field_or(node, key, "replacement", "\xE2\x96\x81");
    if (const json* scheme = JsonFields::find(node, "prepend_scheme")) {
      s.strip_prefix = f.string(*scheme, json_key(key, "prepend_scheme")) != "never";
    } else {
      s.strip_prefix = f.bool_field_or(node, key, "add_prefix_space", true);
    }
  } else if (type == "Replace") {
    s.kind = Step::Replace;
    const std::string k = json_key(key, "pattern");
    const json* pat = JsonFields::find(node, "pattern");
    if (!pat) f.fail(k, "missing");
    s.to = f.string_field(node, key, "content");
    if (const json* str = JsonFields::find(*pat, "String")) {
      s.from = f.string(*str, k + ".String");
    } else if (const json* r = JsonFields::find(*pat, "Regex")) {
      s.re = std::make_shared<UnicodeRegex>(f.string(*r, k + ".Regex"), false, f.source(),
                                            k + ".Regex");
    } else {
      f.fail(k, "expected {\"String\": ...} or {\"Regex\": ...}");
    }
  } else if (type == "Strip") {
    s.kind = Step::Strip;
    s.content = f.string_field(node, key, "content");
    s.start = f.int_field_or(node, key, "start", 0);
    s.stop = f.int_field_or(node, key, "stop", 0);
    if (s.start < 0 || s.stop < 0) f.fail(key, "start and stop must not be negative");
  } else {
    f.unsupported(json_key(key, "type"), type);
  }
  steps_.push_back(std::move(s));
}

std::string TokenDecoder::decode(std::vector<std::string> tokens, bool at_start) const {
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Step::ByteLevel:
        for (auto& t : tokens) t = byte_level_decode(t);
        break;
      case Step::ByteFallback:
        for (auto& t : tokens) {
          const int v = byte_token_value(t);
          if (v >= 0) t = std::string(1, char(v));
        }
        break;
      case Step::Fuse: {
        std::string all;
        for (auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Step::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          tokens[i] = replace_all(tokens[i], s.from, " ");
          if (i == 0 && at_start && s.strip_prefix && !tokens[i].empty() && tokens[i][0] == ' ') {
            tokens[i].erase(0, 1);
          }
        }
        break;
      case Step::Replace:
        for (auto& t : tokens) {
          if (!s.re) {
            t = replace_all(t, s.from, s.to);
            continue;
          }
          std::string out;
          size_t pos = 0;
          for (auto [b, e] : s.re->matches(t)) {
            out.append(t, pos, b - pos);
            out += s.to;
            pos = e;
          }
          out.append(t, pos, std::string::npos);
          t = std::move(out);
        }
        break;
      case Step::Strip:
        if (!at_start || s.content.empty()) break;
        for (auto& t : tokens) {
          for (int64_t k = 0; k < s.start && t.compare(0, s.content.size(), s.content) == 0; ++k) {
            t.erase(0, s.content.size());
          }
          for (int64_t k = 0; k < s.stop && t.size() >= s.content.size() &&
                              t.compare(t.size() - s.content.size(), s.content.size(),
                                        s.content) == 0;
               ++k) {
            t.erase(t.size() - s.content.size());
          }
        }
        break;
    }
  }
  std::string out;
  for (auto& t : tokens) out += t;
  return out;
}

}  // namespace mcw
