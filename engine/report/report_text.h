// Text helpers shared by the report writers: escaping for HTML/SVG, Markdown table cells
// and CSV fields, and numbers written the same whatever the process locale ('.' as the
// decimal point, no digit grouping), so a report reads the same on every machine.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mcw {

// & < > " ' as entities, so the result is safe in element text and in quoted attributes
// of HTML and SVG alike. Bytes that are not well-formed UTF-8 and control characters
// other than tab, newline and carriage return (XML forbids them) become U+FFFD.
std::string escape_html(std::string_view s);

// One Markdown table cell: '|' and the characters Markdown would format (\ ` * _ [ ] < >
// &) escaped, newlines as <br> (the only markup it emits), other control characters as
// U+FFFD, as escape_html.
std::string escape_markdown_cell(std::string_view s);

// One CSV field (RFC 4180): quoted when it holds a comma, a quote, CR or LF, or starts or
// ends with a space; quotes inside doubled.
std::string csv_field(std::string_view s);

// Locale-independent numbers. "nan", "inf" and "-inf" for non-finite values.
std::string format_general(double v, int significant = 4);  // like "%.4g"
std::string format_fixed(double v, int decimals);           // like "%.2f"
std::string format_exact(double v);  // the shortest text that reads back as exactly v

std::string format_bytes(double bytes);            // "1.50 MiB", "512 B"
std::string format_count(double n);                // "6.74 B", "1.02 M", "512"
std::string format_utc_time(double unix_seconds);  // "2026-11-23 14:05:09 UTC"; "" for 0

// At most max_chars characters (UTF-8 aware), with "…" in place of the rest.
std::string truncate_utf8(std::string_view s, size_t max_chars);
size_t utf8_length(std::string_view s);

}  // namespace mcw
