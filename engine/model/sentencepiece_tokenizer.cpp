#include "engine/model/sentencepiece_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <queue>

#include "engine/core/error.h"
#include "engine/model/utf8.h"

namespace mcw {

namespace {

const char* kSpaceMark = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space

int parse_byte_piece(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = t[size_t(i)];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

std::string spaces_to_marks(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    if (c == ' ') {
      out += kSpaceMark;
    } else {
      out += c;
    }
  }
  return out;
}

std::string marks_to_spaces(const std::string& s) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(kSpaceMark, pos)) != std::string::npos; pos = hit + 3) {
    out.append(s, pos, hit - pos);
    out += ' ';
  }
  out.append(s, pos, std::string::npos);
  return out;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceVocab vocab, std::string source)
    : v_(std::move(vocab)), source_(std::move(source)) {
  const size_t n = v_.tokens.size();
  auto fail = [&](const std::string& key, const std::string& msg) {
    throw Error(source_, key + ": " + msg);
  };
  if (n == 0) fail("tokenizer.ggml.tokens", "empty vocabulary");
  if (n > size_t(INT32_MAX)) fail("tokenizer.ggml.tokens", "too many tokens");
  if (v_.scores.empty()) v_.scores.assign(n, 0.0f);
  if (v_.types.empty()) v_.types.assign(n, int32_t(PieceType::Normal));
  if (v_.scores.size() != n) {
    fail("tokenizer.ggml.scores", std::to_string(v_.scores.size()) + " scores for " +
                                      std::to_string(n) + " tokens");
  }
  if (v_.types.size() != n) {
    fail("tokenizer.ggml.token_type", std::to_string(v_.types.size()) + " types for " +
                                          std::to_string(n) + " tokens");
  }
  const std::pair<const char*, int32_t> specials[] = {{"tokenizer.ggml.bos_token_id", v_.bos_id},
                                                      {"tokenizer.ggml.eos_token_id", v_.eos_id},
                                                      {"tokenizer.ggml.unknown_token_id", v_.unk_id}};
  for (auto [key, id] : specials) {
    if (id < -1 || id >= int32_t(n)) {
      fail(key, "id " + std::to_string(id) + " is outside [0, " + std::to_string(n) + ")");
    }
  }
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  byte_value_.assign(n, -1);
  user_by_first_byte_.assign(256, {});
  for (size_t i = 0; i < n; ++i) {
    const std::string idx = std::string(1, '[').append(std::to_string(i)).append("]");
    const int32_t t = v_.types[i];
    if (t < 0 || t > int32_t(PieceType::Byte)) {
      fail("tokenizer.ggml.token_type" + idx, "unknown token type " + std::to_string(t));
    }
    if (!std::isfinite(v_.scores[i])) fail("tokenizer.ggml.scores" + idx, "not a finite number");
    const std::string& text = v_.tokens[i];
    switch (PieceType(t)) {
      case PieceType::Byte: {
        const int b = parse_byte_piece(text);
        if (b < 0) fail("tokenizer.ggml.tokens" + idx, "byte token '" + text + "' is not <0xXX>");
        if (byte_ids_[b] < 0) byte_ids_[b] = int32_t(i);
        byte_value_[i] = int16_t(b);
        break;
      }
      case PieceType::UserDefined:
        if (text.empty()) fail("tokenizer.ggml.tokens" + idx, "empty user-defined token");
        user_by_first_byte_[uint8_t(text[0])].push_back(int32_t(i));
        [[fallthrough]];
      case PieceType::Normal:
      case PieceType::Undefined:
        if (!text.empty()) pieces_.emplace(text, int32_t(i));  // first id wins on duplicates
        break;
      default: break;
    }
  }
  for (auto& bucket : user_by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](int32_t a, int32_t b) {
      return v_.tokens[size_t(a)].size() > v_.tokens[size_t(b)].size();
    });
  }
}

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> ids;
  if (add_bos && v_.bos_id >= 0) ids.push_back(v_.bos_id);
  size_t seg = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    for (int32_t id : user_by_first_byte_[uint8_t(text[i])]) {
      const std::string& t = v_.tokens[size_t(id)];
      if (text.compare(i, t.size(), t) != 0) continue;
      if (i > seg) encode_text(text.substr(seg, i - seg), seg == 0, ids);
      ids.push_back(id);
      seg = i + t.size();
      i = seg - 1;
      break;
    }
  }
  if (seg < text.size()) encode_text(text.substr(seg), seg == 0, ids);
  return ids;
}

void SentencePieceTokenizer::encode_text(std::string_view raw, bool prefix,
                                         std::vector<int32_t>& ids) const {
  std::string spaced(prefix && v_.add_dummy_prefix ? 1 : 0, ' ');
  spaced.append(raw);
  const std::string text = spaces_to_marks(spaced);
  struct Sym {
    int32_t prev, next;
    uint32_t begin, len;
  };
  std::vector<Sym> syms;
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_char_len(text, i);
    const int32_t k = int32_t(syms.size());
    syms.push_back({k - 1, k + 1, uint32_t(i), uint32_t(n)});
    i += n;
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  // Highest score first, then leftmost. A bigram is stale once either side has changed,
  // which shows as a different combined length or the sides no longer being neighbours.
  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t len;
    bool operator<(const Bigram& o) const {
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Bigram> heap;
  auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const Sym& a = syms[size_t(l)];
    const uint32_t len = a.len + syms[size_t(r)].len;
    auto it = pieces_.find(std::string_view(text).substr(a.begin, len));
    if (it != pieces_.end()) heap.push({v_.scores[size_t(it->second)], l, r, len});
  };
  for (int32_t k = 0; k + 1 < int32_t(syms.size()); ++k) consider(k, k + 1);
  while (!heap.empty()) {
    const Bigram b = heap.top();
    heap.pop();
    Sym& l = syms[size_t(b.left)];
    Sym& r = syms[size_t(b.right)];
    if (l.len == 0 || r.len == 0 || l.next != b.right || l.len + r.len != b.len) continue;
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) syms[size_t(r.next)].prev = b.left;
    r.len = 0;
    consider(l.prev, b.left);
    consider(b.left, l.next);
  }
  for (int32_t k = 0; k >= 0; k = syms[size_t(k)].next) {
    const std::string_view s = std::string_view(text).substr(syms[size_t(k)].begin,
                                                             syms[size_t(k)].len);
    if (auto it = pieces_.find(s); it != pieces_.end()) {
      ids.push_back(it->second);
      continue;
    }
    for (char c : s) {
      const int32_t id = byte_ids_[uint8_t(c)] >= 0 ? byte_ids_[uint8_t(c)] : v_.unk_id;
      if (id < 0) {
        throw Error(source_, "cannot encode '" + std::string(s) +
                                 "': no piece, no byte token and no unknown token for it");
      }
      ids.push_back(id);
    }
  }
}

std::string SentencePieceTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw_bad_token_id(id, vocab_size());
    const PieceType t = type(id);
    if (t == PieceType::Control) continue;
    if (t == PieceType::Byte) {
      out += char(byte_value_[size_t(id)]);
    } else {
      std::string piece = marks_to_spaces(v_.tokens[size_t(id)]);
      // Only the space the encoder itself put in front is dropped.
      if (at_start && v_.add_dummy_prefix && t != PieceType::UserDefined && !piece.empty() &&
          piece[0] == ' ') {
        piece.erase(0, 1);
      }
      out += piece;
    }
    at_start = false;
  }
  return out;
}

std::string SentencePieceTokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) throw_bad_token_id(id, vocab_size());
  if (type(id) == PieceType::Byte) return std::string(1, char(byte_value_[size_t(id)]));
  if (type(id) == PieceType::Control) return v_.tokens[size_t(id)];
  return marks_to_spaces(v_.tokens[size_t(id)]);
}

}  // namespace mcw
