// The text side of OCR recognition as PaddleOCR does it: the character set of a recogniser
// (its keys file, class 0 the CTC blank, a space appended as `use_space_char` does), greedy
// CTC decoding of per-position class probabilities, and the scores: character error rate
// (Levenshtein distance over Unicode code points / reference length) and exact lines.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mcw {

struct OcrCharset {
  std::vector<std::string> labels;  // UTF-8; labels[0] is the blank ("")
};

// ppocr_keys_v1.txt: one character per line. Throws mcw::Error naming the file.
OcrCharset load_ocr_keys(const std::string& path, bool use_space = true);

// probs [T, C] (C == charset.labels.size()): the best class per position, repeats collapsed,
// blanks dropped (PaddleOCR's CTCLabelDecode).
std::string ctc_greedy_decode(const float* probs, int64_t T, int64_t C, const OcrCharset& charset);

std::u32string utf8_to_u32(const std::string& s);
// Levenshtein distance (insertions, deletions, substitutions of code points).
int64_t edit_distance(const std::u32string& a, const std::u32string& b);

struct OcrScore {
  int64_t lines = 0, exact = 0, chars = 0, errors = 0;  // chars: reference code points
  double median_ms = 0;                                 // per line, set by score_recogniser
  void add(const std::string& reference, const std::string& hypothesis);
  double cer() const { return chars ? double(errors) / double(chars) : 0.0; }
  double line_accuracy() const { return lines ? double(exact) / double(lines) : 0.0; }
};

}  // namespace mcw
