#include "engine/model/pre_tokenizer.h"

#include "engine/model/byte_level.h"
#include "engine/model/json_fields.h"
#include "engine/model/unicode_regex.h"

namespace mcw {

using nlohmann::json;

namespace {

// How Split treats its matches (Hugging Face's SplitDelimiterBehavior).
enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const std::string& s, const std::string& key, const JsonFields& f) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  f.fail(key, "'" + s + "' is not a split behavior");
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(text);
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(text.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(text.substr(pos));
  return out;
}

// Cuts text at the regex's matches and arranges the parts as `behavior` says.
void split_by(const UnicodeRegex& re, Behavior behavior, bool invert, std::string_view text,
              std::vector<std::string>& out) {
  struct Part {
    size_t b, e;
    bool delim;
  };
  std::vector<Part> parts;
  size_t pos = 0;
  for (auto [b, e] : re.matches(text)) {
    if (b > pos) parts.push_back({pos, b, invert});
    parts.push_back({b, e, !invert});
    pos = e;
  }
  if (pos < text.size()) parts.push_back({pos, text.size(), invert});

  const size_t first_out = out.size();
  bool pending_next = false;  // MergedWithNext: the last piece still waits for its successor
  bool last_delim = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Part& p = parts[i];
    std::string_view s = text.substr(p.b, p.e - p.b);
    switch (behavior) {
      case Behavior::Removed:
        if (!p.delim) out.emplace_back(s);
        break;
      case Behavior::Isolated: out.emplace_back(s); break;
      case Behavior::MergedWithPrevious:
        if (p.delim && out.size() > first_out && !last_delim) {
          out.back().append(s);
        } else {
          out.emplace_back(s);
        }
        break;
      case Behavior::MergedWithNext:
        if (pending_next) {
          out.back().append(s);
        } else {
          out.emplace_back(s);
        }
        // A delimiter joins the piece after it only when that piece is no delimiter too.
        pending_next = p.delim && i + 1 < parts.size() && !parts[i + 1].delim;
        break;
      case Behavior::Contiguous:
        if (p.delim && last_delim && out.size() > first_out) {
          out.back().append(s);
        } else {
          out.emplace_back(s);
        }
        break;
    }
    last_delim = p.delim;
  }
}

}  // namespace

// ---- Normalizer ----

struct Normalizer::Step {
  enum Kind { Prepend, ReplaceString, ReplaceRegex } kind;
  std::string a, b;  // Prepend: a = prefix; Replace: a = pattern, b = content
  std::shared_ptr<UnicodeRegex> re;
};

Normalizer::Normalizer(const json& node, const std::string& key, const JsonFields& fields) {
  if (!node.is_null()) parse(node, key, fields);
}
Normalizer::~Normalizer() = default;

void Normalizer::parse(const json& node, const std::string& key, const JsonFields& f) {
  f.object(node, key);
  const std::string type = f.string_field(node, key, "type");
  if (type == "Sequence") {
    const std::string k = json_key(key, "normalizers");
    const json* list = JsonFields::find(node, "normalizers");
    if (!list) f.fail(k, "missing");
    f.array(*list, k);
    for (size_t i = 0; i < list->size(); ++i) {
      parse((*list)[i], k + "[" + std::to_string(i) + "]", f);
    }
  } else if (type == "Prepend") {
    steps_.push_back({Step::Prepend, f.string_field(node, key, "prepend"), {}, nullptr});
  } else if (type == "Replace") {
    const std::string k = json_key(key, "pattern");
    const json* pat = JsonFields::find(node, "pattern");
    if (!pat) f.fail(k, "missing");
    const std::string content = f.string_field(node, key, "content");
    if (const json* s = JsonFields::find(*pat, "String")) {
      steps_.push_back({Step::ReplaceString, f.string(*s, k + ".String"), content, nullptr});
    } else if (const json* r = JsonFields::find(*pat, "Regex")) {
      auto re = std::make_shared<UnicodeRegex>(f.string(*r, k + ".Regex"), false, f.source(),
                                               k + ".Regex");
      steps_.push_back({Step::ReplaceRegex, {}, content, std::move(re)});
    } else {
      f.fail(k, "expected {\"String\": ...} or {\"Regex\": ...}");
    }
  } else {
    f.unsupported(json_key(key, "type"), type);
  }
}

std::string Normalizer::apply(std::string text) const {
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Step::Prepend:
        if (!text.empty()) text = s.a + text;
        break;
      case Step::ReplaceString: text = replace_all(text, s.a, s.b); break;
      case Step::ReplaceRegex: {
        std::string out;
        size_t pos = 0;
        for (auto [b, e] : s.re->matches(text)) {
          out.append(text, pos, b - pos);
          out.append(s.b);
          pos = e;
        }
        out.append(text, pos, std::string::npos);
        text = std::move(out);
        break;
      }
    }
  }
  return text;
}

// ---- PreTokenizer ----

struct PreTokenizer::Step {
  enum Kind { Split, ByteLevel, Metaspace } kind;
  std::shared_ptr<UnicodeRegex> re;  // Split; ByteLevel with use_regex
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace
  enum Prepend { Always, First, Never } prepend = Always;
  bool split = true;  // Metaspace
};

PreTokenizer::PreTokenizer(const json& node, const std::string& key, const JsonFields& fields) {
  if (!node.is_null()) parse(node, key, fields);
}
PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::parse(const json& node, const std::string& key, const JsonFields& f) {
  f.object(node, key);
  const std::string type = f.string_field(node, key, "type");
  auto regex = [&](std::string_view pattern, bool literal, const std::string& k) {
    return std::make_shared<UnicodeRegex>(pattern, literal, f.source(), k);
  };
  Step s{};
  if (type == "Sequence") {
    const std::string k = json_key(key, "pretokenizers");
    const json* list = JsonFields::find(node, "pretokenizers");
    if (!list) f.fail(k, "missing");
    f.array(*list, k);
    for (size_t i = 0; i < list->size(); ++i) {
      parse((*list)[i], k + "[" + std::to_string(i) + "]", f);
    }
    return;
  } else if (type == "Split") {
    s.kind = Step::Split;
    const std::string k = json_key(key, "pattern");
    const json* pat = JsonFields::find(node, "pattern");
    if (!pat) f.fail(k, "missing");
    if (const json* str = JsonFields::find(*pat, "String")) {
      s.re = regex(f.string(*str, k + ".String"), true, k + ".String");
    } else if (const json* r = JsonFields::find(*pat, "Regex")) {
      s.re = regex(f.string(*r, k + ".Regex"), false, k + ".Regex");
    } else {
      f.fail(k, "expected {\"String\": ...} or {\"Regex\": ...}");
    }
    s.behavior = parse_behavior(f.string_field_or(node, key, "behavior", "Isolated"),
                                json_key(key, "behavior"), f);
    s.invert = f.bool_field_or(node, key, "invert", false);
  } else if (type == "ByteLevel") {
    s.kind = Step::ByteLevel;
    s.add_prefix_space = f.bool_field_or(node, key, "add_prefix_space", true);
    if (f.bool_field_or(node, key, "use_regex", true)) {
      s.re = regex(gpt2_split_pattern(), false, key + " (GPT-2 pattern)");
    }
    byte_level_ = true;
  } else if (type == "Metaspace") {
    s.kind = Step::Metaspace;
    s.replacement = f.string_field_or(node, key, "replacement", "\xE2\x96\x81");
    if (s.replacement.empty()) f.fail(json_key(key, "replacement"), "must not be empty");
    s.split = f.bool_field_or(node, key, "split", true);
    if (const json* scheme = JsonFields::find(node, "prepend_scheme")) {
      const std::string k = json_key(key, "prepend_scheme");
      const std::string v = f.string(*scheme, k);
      if (v == "always") {
        s.prepend = Step::Always;
      } else if (v == "first") {
        s.prepend = Step::First;
      } else if (v == "never") {
        s.prepend = Step::Never;
      } else {
        f.fail(k, "'" + v + "' is not one of always, first, never");
      }
    } else {
      s.prepend = f.bool_field_or(node, key, "add_prefix_space", true) ? Step::Always : Step::Never;
    }
  } else if (type == "Digits") {
    s.kind = Step::Split;
    const bool single = f.bool_field_or(node, key, "individual_digits", false);
    s.re = regex(single ? "\\p{N}" : "\\p{N}+", false, key);
  } else if (type == "WhitespaceSplit") {
    s.kind = Step::Split;
    s.re = regex("\\s+", false, key);
    s.behavior = Behavior::Removed;
  } else if (type == "Whitespace") {
    // Keeps the runs of word and of punctuation characters, drops the whitespace between.
    s.kind = Step::Split;
    s.re = regex("\\w+|[^\\w\\s]+", false, key);
    s.behavior = Behavior::Removed;
    s.invert = true;
  } else {
    f.unsupported(json_key(key, "type"), type);
  }
  steps_.push_back(std::move(s));
}

void PreTokenizer::split(std::string_view text, bool first_segment,
                         std::vector<std::string>& out) const {
  std::vector<std::string> pieces{std::string(text)};
  std::vector<std::string> next;
  for (const Step& s : steps_) {
    next.clear();
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string& p = pieces[i];
      switch (s.kind) {
        case Step::Split: split_by(*s.re, s.behavior, s.invert, p, next); break;
        case Step::ByteLevel: {
          if (s.add_prefix_space && !p.empty() && p[0] != ' ') p.insert(p.begin(), ' ');
          if (s.re) {
            std::vector<std::string> parts;
            split_by(*s.re, Behavior::Isolated, false, p, parts);
            for (auto& part : parts) next.push_back(byte_level_encode(part));
          } else {
            next.push_back(byte_level_encode(p));
          }
          break;
        }
        case Step::Metaspace: {
          std::string r = replace_all(p, " ", s.replacement);
          const bool prepend = s.prepend == Step::Always || (s.prepend == Step::First &&
                                                              first_segment && i == 0);
          if (prepend && !r.empty() && r.compare(0, s.replacement.size(), s.replacement) != 0) {
            r = s.replacement + r;
          }
          if (!s.split) {
            next.push_back(std::move(r));
            break;
          }
          // Each piece starts at a replacement character (Hugging Face's MergedWithNext).
          size_t start = 0;
          for (size_t hit = r.find(s.replacement, 1); hit != std::string::npos;
               hit = r.find(s.replacement, hit + s.replacement.size())) {
            next.push_back(r.substr(start, hit - start));
            start = hit;
          }
          if (start < r.size()) next.push_back(r.substr(start));
          break;
        }
      }
    }
    pieces.swap(next);
  }
  for (auto& p : pieces) {
    if (!p.empty()) out.push_back(std::move(p));
  }
}

}  // namespace mcw
