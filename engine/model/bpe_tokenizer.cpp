#include "engine/model/bpe_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <queue>
#include <sstream>

#include "engine/core/error.h"
#include "engine/model/byte_level.h"
#include "engine/model/json_fields.h"
#include "engine/model/utf8.h"

namespace mcw {

using nlohmann::json;

namespace {

const char* kDash = " \xE2\x80\x94 ";  // " — "

std::string byte_token_name(int b) {
  static const char* hex = "0123456789ABCDEF";
  return std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
}

bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }
bool is_space_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_file(const std::string& path,
                                                      const BpeTokenizerOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path, "read failed");
  json doc;
  try {
    doc = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    // nlohmann's message starts with its own "[json.exception...]" tag; keep the reason.
    std::string what = e.what();
    const size_t colon = what.find("syntax error");
    throw Error(path, "invalid JSON: " + (colon == std::string::npos ? what : what.substr(colon)),
                int64_t(e.byte > 0 ? e.byte - 1 : 0));
  } catch (const json::exception& e) {  // a number out of range (1e400) is not a parse_error
    throw Error(path, std::string("invalid JSON: ") + e.what());
  }
  return std::make_unique<BpeTokenizer>(doc, path, options);
}

BpeTokenizer::BpeTokenizer(const json& doc, std::string source, const BpeTokenizerOptions& options)
    : source_(std::move(source)) {
  JsonFields f(source_);
  f.object(doc, "(top level)");
  const json* model = JsonFields::find(doc, "model");
  if (!model) f.fail("model", "missing");
  f.object(*model, "model");
  const std::string type = f.string_field_or(*model, "model", "type", "BPE");
  if (type != "BPE") f.unsupported("model.type", type, " (only BPE)");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!f.string_field_or(*model, "model", k, "").empty()) {
      f.fail(json_key("model", k), "is not supported");
    }
  }
  if (const json* d = JsonFields::find(*model, "dropout")) {
    if (!d->is_number() || d->get<double>() != 0.0) f.fail("model.dropout", "is not supported");
  }
  byte_fallback_ = f.bool_field_or(*model, "model", "byte_fallback", false);
  fuse_unk_ = f.bool_field_or(*model, "model", "fuse_unk", false);
  ignore_merges_ = f.bool_field_or(*model, "model", "ignore_merges", false);

  // Ids must be below the number of entries in the file, so the id table's size is bounded
  // by the input and not by a hostile id.
  const json* vocab = JsonFields::find(*model, "vocab");
  const json* added = JsonFields::find(doc, "added_tokens");
  const size_t id_bound = (vocab ? vocab->size() : 0) + (added ? added->size() : 0);
  load_vocab(*model, id_bound);
  load_added_tokens(doc, id_bound);
  load_merges(*model);

  static const json null_json;
  auto node = [&](const char* name) -> const json& {
    const json* n = JsonFields::find(doc, name);
    return n ? *n : null_json;
  };
  normalizer_ = std::make_unique<Normalizer>(node("normalizer"), "normalizer", f);
  pre_tokenizer_ = std::make_unique<PreTokenizer>(node("pre_tokenizer"), "pre_tokenizer", f);
  decoder_ = std::make_unique<TokenDecoder>(node("decoder"), "decoder", f);

  if (pre_tokenizer_->byte_level()) {
    for (int b = 0; b < 256; ++b) {
      const std::string& ch = byte_level_char(uint8_t(b));
      if (vocab_.find(ch) == vocab_.end()) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", b);
        f.fail("model.vocab", std::string("byte ") + hex + " (token '" + ch +
                                  "') is missing; a byte-level vocabulary needs all 256 bytes");
      }
    }
  }
  if (const json* unk = JsonFields::find(*model, "unk_token")) {
    const std::string u = f.string(*unk, "model.unk_token");
    auto it = vocab_.find(u);
    if (it == vocab_.end()) f.fail("model.unk_token", "'" + u + "' is not in model.vocab");
    unk_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(byte_token_name(b));
    byte_tokens_[b] = it == vocab_.end() ? -1 : it->second;
  }
  find_special_ids(doc, options);
}

BpeTokenizer::~BpeTokenizer() = default;

void BpeTokenizer::load_vocab(const json& model, size_t id_bound) {
  JsonFields f(source_);
  const json* vocab = JsonFields::find(model, "vocab");
  if (!vocab) f.fail("model.vocab", "missing");
  f.object(*vocab, "model.vocab");
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const std::string key = "model.vocab['" + it.key() + "']";
    const int64_t id = f.integer(it.value(), key);
    if (id < 0 || uint64_t(id) >= id_bound) {
      f.fail(key, "id " + std::to_string(id) + " is outside [0, " + std::to_string(id_bound) +
                      "), the number of tokens in the file");
    }
    if (size_t(id) >= id_to_token_.size()) {
      id_to_token_.resize(size_t(id) + 1);
      is_added_.resize(size_t(id) + 1);
    }
    if (!id_to_token_[size_t(id)].empty()) {
      f.fail(key, "id " + std::to_string(id) + " is also used by '" + id_to_token_[size_t(id)] +
                      "'");
    }
    if (it.key().empty()) f.fail(key, "empty token");
    id_to_token_[size_t(id)] = it.key();
    vocab_.emplace(it.key(), int32_t(id));
  }
}

void BpeTokenizer::load_merges(const json& model) {
  JsonFields f(source_);
  const json* merges = JsonFields::find(model, "merges");
  if (!merges) return;
  f.array(*merges, "model.merges");
  merges_.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const std::string key = "model.merges[" + std::to_string(i) + "]";
    const json& m = (*merges)[i];
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() ||
          s.find(' ', sp + 1) != std::string::npos) {
        f.fail(key, "'" + s + "' is not two tokens separated by one space");
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      f.fail(key, "expected \"a b\" or [\"a\", \"b\"], found " + m.dump());
    }
    const std::string shown = "'" + a + " " + b + "'";
    auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
    if (ia == vocab_.end()) f.fail(key, shown + kDash + "token '" + a + "' is not in model.vocab");
    if (ib == vocab_.end()) f.fail(key, shown + kDash + "token '" + b + "' is not in model.vocab");
    if (iab == vocab_.end()) {
      f.fail(key, shown + kDash + "merged token '" + a + b + "' is not in model.vocab");
    }
    // A repeated pair keeps its first (lowest) rank, as a later duplicate can never apply.
    merges_.emplace(pair_key(ia->second, ib->second), Merge{int32_t(i), iab->second});
  }
}

void BpeTokenizer::load_added_tokens(const json& doc, size_t id_bound) {
  JsonFields f(source_);
  added_by_first_byte_.assign(256, {});
  const json* added = JsonFields::find(doc, "added_tokens");
  if (!added) return;
  f.array(*added, "added_tokens");
  for (size_t i = 0; i < added->size(); ++i) {
    const std::string key = "added_tokens[" + std::to_string(i) + "]";
    const json& t = (*added)[i];
    f.object(t, key);
    const json* idj = JsonFields::find(t, "id");
    if (!idj) f.fail(key + ".id", "missing");
    const int64_t id = f.integer(*idj, key + ".id");
    if (id < 0 || uint64_t(id) >= id_bound) {
      f.fail(key + ".id", "id " + std::to_string(id) + " is outside [0, " +
                              std::to_string(id_bound) + "), the number of tokens in the file");
    }
    AddedToken tok{f.string_field(t, key, "content"), int32_t(id),
                   f.bool_field_or(t, key, "lstrip", false), f.bool_field_or(t, key, "rstrip", false),
                   f.bool_field_or(t, key, "single_word", false)};
    if (tok.content.empty()) f.fail(key + ".content", "empty token");
    if (size_t(id) >= id_to_token_.size()) {
      id_to_token_.resize(size_t(id) + 1);
      is_added_.resize(size_t(id) + 1);
    }
    id_to_token_[size_t(id)] = tok.content;
    is_added_[size_t(id)] = true;
    added_by_first_byte_[uint8_t(tok.content[0])].push_back(int32_t(added_.size()));
    added_.push_back(std::move(tok));
  }
  for (auto& bucket : added_by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](int32_t x, int32_t y) {
      return added_[size_t(x)].content.size() > added_[size_t(y)].content.size();
    });
  }
}

void BpeTokenizer::find_special_ids(const json& doc, const BpeTokenizerOptions& options) {
  JsonFields f(source_);
  auto by_name = [&](const std::string& name, const char* what) {
    const int32_t id = token_id(name);
    if (id < 0) f.fail(what, "'" + name + "' is not in the vocabulary");
    return id;
  };
  if (!options.bos_token.empty()) bos_ = by_name(options.bos_token, "bos_token");
  if (!options.eos_token.empty()) eos_ = by_name(options.eos_token, "eos_token");

  // A TemplateProcessing post-processor (possibly inside a Sequence) that starts its single
  // template with a special token says which token is BOS.
  if (bos_ < 0) {
    std::vector<const json*> todo{JsonFields::find(doc, "post_processor")};
    while (!todo.empty() && bos_ < 0) {
      const json* p = todo.back();
      todo.pop_back();
      if (!p || !p->is_object()) continue;
      if (const json* list = JsonFields::find(*p, "processors"); list && list->is_array()) {
        for (const json& q : *list) todo.push_back(&q);
      }
      const json* single = JsonFields::find(*p, "single");
      if (!single || !single->is_array() || single->empty()) continue;
      const json* first = JsonFields::find((*single)[0], "SpecialToken");
      const json* name = first ? JsonFields::find(*first, "id") : nullptr;
      if (name && name->is_string()) bos_ = token_id(name->get<std::string>());
    }
  }
  auto first_known = [&](std::initializer_list<const char*> names) {
    for (const char* n : names) {
      if (int32_t id = token_id(n); id >= 0) return id;
    }
    return int32_t(-1);
  };
  if (bos_ < 0) bos_ = first_known({"<|begin_of_text|>", "<|bos|>", "<s>", "<|startoftext|>"});
  if (eos_ < 0) {
    eos_ = first_known({"<|end_of_text|>", "<|eos|>", "</s>", "<|endoftext|>", "<|im_end|>"});
  }
}

int32_t BpeTokenizer::token_id(std::string_view token) const {
  for (const AddedToken& t : added_) {
    if (t.content == token) return t.id;
  }
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

std::vector<BpeTokenizer::Segment> BpeTokenizer::split_added(std::string_view text) const {
  std::vector<Segment> out;
  size_t seg_begin = 0;  // start of the plain text not yet emitted
  for (size_t i = 0; i < text.size(); ++i) {
    for (int32_t k : added_by_first_byte_[uint8_t(text[i])]) {
      const AddedToken& t = added_[size_t(k)];
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      size_t b = i, e = i + t.content.size();
      if (t.single_word && ((b > 0 && is_word_byte(uint8_t(text[b - 1]))) ||
                            (e < text.size() && is_word_byte(uint8_t(text[e]))))) {
        continue;
      }
      if (t.lstrip) {
        while (b > seg_begin && is_space_byte(text[b - 1])) --b;
      }
      if (t.rstrip) {
        while (e < text.size() && is_space_byte(text[e])) ++e;
      }
      if (b > seg_begin) out.push_back({seg_begin, b, -1});
      out.push_back({b, e, t.id});
      seg_begin = e;
      i = e - 1;
      break;
    }
  }
  if (seg_begin < text.size()) out.push_back({seg_begin, text.size(), -1});
  return out;
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> ids;
  if (add_bos && bos_ >= 0) ids.push_back(bos_);
  std::vector<std::string> pieces;
  for (const Segment& s : split_added(text)) {
    if (s.id >= 0) {
      ids.push_back(s.id);
      continue;
    }
    pieces.clear();
    const std::string normalized = normalizer_->apply(std::string(text.substr(s.begin, s.end - s.begin)));
    pre_tokenizer_->split(normalized, s.begin == 0, pieces);
    for (const std::string& p : pieces) encode_piece(p, ids);
  }
  return ids;
}

int32_t BpeTokenizer::merge_result(int32_t left, int32_t right, int32_t* rank) const {
  if (left < 0 || right < 0) return -1;
  auto it = merges_.find(pair_key(left, right));
  if (it == merges_.end()) return -1;
  *rank = it->second.rank;
  return it->second.result;
}

// Symbols form a linked list over the piece; a min-heap holds candidate merges ordered by
// (rank, position). Entries made stale by an earlier merge are recognised on pop because
// their symbols are no longer adjacent or no longer carry the ids the entry was made from.
void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& ids) const {
  if (ignore_merges_) {
    if (auto it = vocab_.find(piece); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  struct Sym {
    int32_t id, prev, next;
    uint32_t begin, len;
  };
  std::vector<Sym> syms;
  for (size_t i = 0; i < piece.size();) {
    const size_t n = utf8_char_len(piece, i);
    auto it = vocab_.find(piece.substr(i, n));
    const int32_t k = int32_t(syms.size());
    syms.push_back({it == vocab_.end() ? -1 : it->second, k - 1, k + 1, uint32_t(i), uint32_t(n)});
    i += n;
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Cand {
    int32_t rank, left, right, left_id, right_id;
    bool operator>(const Cand& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    int32_t rank = 0;
    if (merge_result(syms[size_t(l)].id, syms[size_t(r)].id, &rank) >= 0) {
      heap.push({rank, l, r, syms[size_t(l)].id, syms[size_t(r)].id});
    }
  };
  for (int32_t k = 0; k + 1 < int32_t(syms.size()); ++k) consider(k, k + 1);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[size_t(c.left)];
    Sym& r = syms[size_t(c.right)];
    if (l.len == 0 || r.len == 0 || l.next != c.right || l.id != c.left_id || r.id != c.right_id) {
      continue;
    }
    int32_t rank = 0;
    l.id = merge_result(l.id, r.id, &rank);
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) syms[size_t(r.next)].prev = c.left;
    r.len = 0;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  for (int32_t k = 0; k >= 0; k = syms[size_t(k)].next) {
    const Sym& s = syms[size_t(k)];
    if (s.id >= 0) {
      ids.push_back(s.id);
    } else {
      push_unknown(piece.substr(s.begin, s.len), ids);
    }
  }
}

void BpeTokenizer::push_unknown(std::string_view chars, std::vector<int32_t>& ids) const {
  if (byte_fallback_) {
    bool all = true;
    for (char c : chars) all = all && byte_tokens_[uint8_t(c)] >= 0;
    if (all) {
      for (char c : chars) ids.push_back(byte_tokens_[uint8_t(c)]);
      return;
    }
  }
  if (unk_ < 0) {
    throw Error(source_, "cannot encode '" + std::string(chars) +
                             "': it is not in model.vocab and the model has no unk_token" +
                             (byte_fallback_ ? " or byte token for it" : ""));
  }
  if (fuse_unk_ && !ids.empty() && ids.back() == unk_) return;
  ids.push_back(unk_);
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw_bad_token_id(id, vocab_size());
    tokens.push_back(id_to_token_[size_t(id)]);
  }
  return decoder_->decode(std::move(tokens), true);
}

std::string BpeTokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) throw_bad_token_id(id, vocab_size());
  if (is_added_[size_t(id)]) return id_to_token_[size_t(id)];
  return decoder_->decode({id_to_token_[size_t(id)]}, false);
}

}  // namespace mcw
