#include "engine/ocr/ocr_text.h"

#include <algorithm>
#include <fstream>

#include "engine/core/error.h"

namespace mcw {

OcrCharset load_ocr_keys(const std::string& path, bool use_space) {
  std::ifstream in(path);
  if (!in) throw Error(path, "cannot read the character keys");
  OcrCharset c;
  c.labels.push_back("");  // the CTC blank
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    c.labels.push_back(line);
  }
  if (c.labels.size() < 2) throw Error(path, "holds no characters");
  if (use_space) c.labels.push_back(" ");
  return c;
}

std::string ctc_greedy_decode(const float* probs, int64_t T, int64_t C, const OcrCharset& charset) {
  if (C != int64_t(charset.labels.size()))
    throw Error("ctc", "the model scores " + std::to_string(C) +
                           " classes, the character set has " +
                           std::to_string(charset.labels.size()));
  std::string out;
  int64_t prev = -1;
  for (int64_t t = 0; t < T; ++t) {
    const float* p = probs + t * C;
    const int64_t best = std::max_element(p, p + C) - p;
    if (best != 0 && best != prev) out += charset.labels[size_t(best)];
    prev = best;
  }
  return out;
}

std::u32string utf8_to_u32(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
    char32_t c = n == 1 ? b : n == 2 ? b & 0x1f : n == 3 ? b & 0x0f : b & 0x07;
    for (int k = 1; k < n && i + size_t(k) < s.size(); ++k)
      c = (c << 6) | (static_cast<unsigned char>(s[i + size_t(k)]) & 0x3f);
    out.push_back(c);
    i += size_t(n);
  }
  return out;
}

int64_t edit_distance(const std::u32string& a, const std::u32string& b) {
  std::vector<int64_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = int64_t(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int64_t diag = row[0];
    row[0] = int64_t(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

void OcrScore::add(const std::string& reference, const std::string& hypothesis) {
  const std::u32string r = utf8_to_u32(reference), h = utf8_to_u32(hypothesis);
  ++lines;
  exact += r == h;
  chars += int64_t(r.size());
  errors += edit_distance(r, h);
}

}  // namespace mcw
