// A small, strict XML well-formedness checker for tests of generated SVG and HTML: tags
// balanced and properly nested, attributes quoted and not repeated, '&' only as a known
// entity or a character reference, no raw '<' in text or attribute values. A leading
// <!DOCTYPE ...> and comments are allowed. It also collects every element with its
// attributes, so tests can look at what was drawn.
#pragma once
#include <cctype>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mcw::test {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attrs;  // values as written (entities not decoded)
  size_t begin = 0, end = 0;                 // [begin, end) of the element in the text
  size_t depth = 0;
};

struct XmlCheck {
  std::string problem;  // empty when well-formed
  std::vector<XmlElement> elements;
};

namespace xml_detail {

inline bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' ||
         c == '.';
}

// Checks '&' references and '<' in [b, e); returns a problem or "".
inline std::string check_chars(std::string_view s, size_t b, size_t e) {
  for (size_t i = b; i < e; ++i) {
    if (s[i] == '<') return "raw '<' at " + std::to_string(i);
    if (s[i] != '&') continue;
    const size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi > e || semi - i > 10)
      return "bad '&' at " + std::to_string(i);
    const std::string_view ent = s.substr(i + 1, semi - i - 1);
    bool ok = ent == "amp" || ent == "lt" || ent == "gt" || ent == "quot" || ent == "apos";
    if (!ok && ent.size() >= 2 && ent[0] == '#') {
      ok = true;
      const bool hex = ent[1] == 'x';
      for (size_t k = hex ? 2 : 1; k < ent.size(); ++k)
        ok &= hex ? std::isxdigit(static_cast<unsigned char>(ent[k])) != 0
                  : std::isdigit(static_cast<unsigned char>(ent[k])) != 0;
      ok &= ent.size() > (hex ? 2u : 1u);
    }
    if (!ok) return "unknown entity '&" + std::string(ent) + ";' at " + std::to_string(i);
  }
  return "";
}

}  // namespace xml_detail

inline XmlCheck check_xml(std::string_view s) {
  using namespace xml_detail;
  XmlCheck out;
  std::vector<size_t> open;  // indices into out.elements
  size_t i = 0;
  auto fail = [&](const std::string& why) {
    out.problem = why;
    return out;
  };
  while (i < s.size()) {
    const size_t lt = s.find('<', i);
    const size_t text_end = lt == std::string_view::npos ? s.size() : lt;
    if (std::string p = check_chars(s, i, text_end); !p.empty()) return fail(p);
    if (lt == std::string_view::npos) break;
    if (s.compare(lt, 4, "<!--") == 0) {
      const size_t e = s.find("-->", lt + 4);
      if (e == std::string_view::npos) return fail("unterminated comment");
      i = e + 3;
      continue;
    }
    if (s.compare(lt, 9, "<!DOCTYPE") == 0) {
      if (!out.elements.empty()) return fail("DOCTYPE after the first element");
      const size_t e = s.find('>', lt);
      if (e == std::string_view::npos) return fail("unterminated DOCTYPE");
      i = e + 1;
      continue;
    }
    size_t k = lt + 1;
    const bool closing = k < s.size() && s[k] == '/';
    if (closing) ++k;
    const size_t name_begin = k;
    while (k < s.size() && name_char(s[k])) ++k;
    if (k == name_begin) return fail("tag without a name at " + std::to_string(lt));
    const std::string name(s.substr(name_begin, k - name_begin));
    if (closing) {
      while (k < s.size() && std::isspace(static_cast<unsigned char>(s[k]))) ++k;
      if (k >= s.size() || s[k] != '>') return fail("bad end tag </" + name + ">");
      if (open.empty() || out.elements[open.back()].name != name)
        return fail(
            "</" + name + "> closes " +
            (open.empty() ? std::string("nothing") : "<" + out.elements[open.back()].name + ">") +
            " at " + std::to_string(lt));
      out.elements[open.back()].end = k + 1;
      open.pop_back();
      i = k + 1;
      continue;
    }
    XmlElement el;
    el.name = name;
    el.begin = lt;
    el.depth = open.size();
    bool self_closing = false;
    for (;;) {
      const size_t before = k;
      while (k < s.size() && std::isspace(static_cast<unsigned char>(s[k]))) ++k;
      if (k >= s.size()) return fail("unterminated tag <" + name + ">");
      if (s[k] == '>') {
        ++k;
        break;
      }
      if (s[k] == '/') {
        if (k + 1 >= s.size() || s[k + 1] != '>') return fail("bad '/' in <" + name + ">");
        self_closing = true;
        k += 2;
        break;
      }
      if (k == before) return fail("attributes of <" + name + "> not separated by space");
      const size_t an = k;
      while (k < s.size() && name_char(s[k])) ++k;
      if (k == an) return fail("bad attribute in <" + name + "> at " + std::to_string(k));
      const std::string attr(s.substr(an, k - an));
      if (k >= s.size() || s[k] != '=') return fail("attribute " + attr + " without a value");
      ++k;
      if (k >= s.size() || (s[k] != '"' && s[k] != '\''))
        return fail("unquoted attribute " + attr + " in <" + name + ">");
      const char q = s[k];
      const size_t ve = s.find(q, k + 1);
      if (ve == std::string_view::npos) return fail("unterminated attribute " + attr);
      if (std::string p = check_chars(s, k + 1, ve); !p.empty()) return fail(attr + ": " + p);
      if (el.attrs.count(attr)) return fail("repeated attribute " + attr + " in <" + name + ">");
      el.attrs[attr] = std::string(s.substr(k + 1, ve - k - 1));
      k = ve + 1;
    }
    out.elements.push_back(el);
    if (self_closing)
      out.elements.back().end = k;
    else
      open.push_back(out.elements.size() - 1);
    i = k;
    // Raw-text elements hold no markup; their text must still not contain '<' or '&'
    // (checked by the loop) so the document stays XML.
  }
  if (!open.empty()) return fail("<" + out.elements[open.back()].name + "> is never closed");
  return out;
}

}  // namespace mcw::test
