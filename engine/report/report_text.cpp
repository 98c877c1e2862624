#include "engine/report/report_text.h"

#include <charconv>
#include <cmath>
#include <ctime>

#include "engine/model/utf8.h"

namespace mcw {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Calls out(piece) for each character of s: a well-formed UTF-8 sequence as is, any other
// byte and any control character XML forbids as U+FFFD.
template <class Out>
void for_each_clean_char(std::string_view s, Out&& out) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_char_len(s, i);
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (n == 1 && (c >= 0x80 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f))
      out(kReplacement);
    else
      out(s.substr(i, n));
    i += n;
  }
}

std::string from_chars_result(const char* begin, std::to_chars_result r) {
  if (r.ec != std::errc()) return "?";
  return std::string(begin, static_cast<const char*>(r.ptr));
}

std::string non_finite(double v) { return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }

}  // namespace

std::string escape_html(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for_each_clean_char(s, [&](std::string_view ch) {
    switch (ch[0]) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  });
  return out;
}

std::string escape_markdown_cell(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  bool after_cr = false;  // "\r\n" is one line break, not two
  for_each_clean_char(s, [&](std::string_view ch) {
    const bool cr = ch[0] == '\r';
    if (ch[0] == '\n' && after_cr) {
      after_cr = false;
      return;
    }
    after_cr = cr;
    switch (ch[0]) {
      case '\r':
      case '\n':
        out += "<br>";
        break;
      case '\t':
        out += ' ';
        break;
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '|':
      case '\\':
      case '`':
      case '*':
      case '_':
      case '[':
      case ']':
        out += '\\';
        out += ch;
        break;
      default:
        out += ch;
    }
  });
  return out;
}

std::string csv_field(std::string_view s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string format_general(double v, int significant) {
  if (!std::isfinite(v)) return non_finite(v);
  char buf[64];
  return from_chars_result(
      buf, std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, significant));
}

std::string format_fixed(double v, int decimals) {
  if (!std::isfinite(v)) return non_finite(v);
  if (std::fabs(v) >= 1e15) return format_general(v, 6);  // keep the text short
  char buf[64];
  return from_chars_result(
      buf, std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals));
}

std::string format_exact(double v) {
  if (!std::isfinite(v)) return non_finite(v);
  char buf[64];
  return from_chars_result(buf, std::to_chars(buf, buf + sizeof buf, v));
}

std::string format_bytes(double bytes) {
  if (!std::isfinite(bytes)) return non_finite(bytes);
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  double v = bytes;
  while (std::fabs(v) >= 1024 && u < 5) v /= 1024, ++u;
  return u == 0 ? format_fixed(v, 0) + " B" : format_fixed(v, 2) + " " + units[u];
}

std::string format_count(double n) {
  if (!std::isfinite(n)) return non_finite(n);
  const double a = std::fabs(n);
  if (a >= 1e12) return format_fixed(n / 1e12, 2) + " T";
  if (a >= 1e9) return format_fixed(n / 1e9, 2) + " B";
  if (a >= 1e6) return format_fixed(n / 1e6, 2) + " M";
  if (a >= 1e4) return format_fixed(n / 1e3, 1) + " k";
  return format_fixed(n, 0);
}

std::string format_utc_time(double unix_seconds) {
  if (!(unix_seconds > 0) || !std::isfinite(unix_seconds)) return {};
  const std::time_t t = std::time_t(unix_seconds);
  std::tm tm{};
  if (!gmtime_r(&t, &tm)) return {};
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += utf8_char_len(s, i)) ++n;
  return n;
}

std::string truncate_utf8(std::string_view s, size_t max_chars) {
  if (utf8_length(s) <= max_chars) return std::string(s);
  if (max_chars == 0) return {};
  size_t i = 0;
  for (size_t n = 0; n + 1 < max_chars && i < s.size(); ++n) i += utf8_char_len(s, i);
  return std::string(s.substr(0, i)) + "\xE2\x80\xA6";  // U+2026
}

}  // namespace mcw
