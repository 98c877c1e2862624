#include "engine/model/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <set>

#include "engine/core/error.h"
#include "engine/io/atomic_file.h"
#include "engine/model/byte_level.h"
#include "engine/model/json_fields.h"
#include "engine/model/pre_tokenizer.h"
#include "engine/model/unicode_regex.h"
#include "engine/model/utf8.h"

namespace mcw {

using nlohmann::ordered_json;

namespace {

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t key_left(uint64_t k) { return int32_t(k >> 32); }
int32_t key_right(uint64_t k) { return int32_t(k & 0xFFFFFFFFu); }

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_char_len(s, i);
    if (n == 1 && static_cast<unsigned char>(s[i]) >= 0x80) return false;
    i += n;
  }
  return true;
}

// Heap entry: most frequent first; ties go to the lowest left id, then the lowest right id.
struct Candidate {
  int64_t count;
  uint64_t key;
  bool operator<(const Candidate& o) const {
    if (count != o.count) return count < o.count;
    return key > o.key;  // the key orders by (left, right)
  }
};

}  // namespace

std::string BpeTrainer::default_split_pattern() { return gpt2_split_pattern(); }

ordered_json BpeTrainer::pre_tokenizer_json(const std::string& split_pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           ordered_json::array(
               {{{"type", "Split"},
                 {"pattern", {{"Regex", split_pattern}}},
                 {"behavior", "Isolated"},
                 {"invert", false}},
                {{"type", "ByteLevel"},
                 {"add_prefix_space", false},
                 {"trim_offsets", true},
                 {"use_regex", false}}})}};
}

BpeTrainer::BpeTrainer(std::string split_pattern) : pattern_(std::move(split_pattern)) {
  const nlohmann::json node = nlohmann::json::parse(pre_tokenizer_json(pattern_).dump());
  pre_ = std::make_unique<PreTokenizer>(node, "split_pattern", JsonFields("BPE trainer"));
}

BpeTrainer::~BpeTrainer() = default;

void BpeTrainer::add_text(std::string_view text) {
  std::vector<std::string> pieces;
  pre_->split(text, true, pieces);
  for (const std::string& p : pieces) ++counts_[byte_level_decode(p)];
}

TrainedBpe BpeTrainer::train(int32_t vocab_size, const std::vector<std::string>& special_tokens,
                             const CancelToken* cancel, const ProgressFn& progress) const {
  std::set<std::string> seen;
  for (const std::string& s : special_tokens) {
    if (s.empty() || !valid_utf8(s) || !seen.insert(s).second) {
      throw Error("", "BPE trainer: special token '" + s + "' is empty, repeated or not UTF-8");
    }
  }
  const int64_t n_special = int64_t(special_tokens.size());
  if (int64_t(vocab_size) < 256 + n_special) {
    throw Error("", "BPE trainer: vocab_size " + std::to_string(vocab_size) +
                        " is smaller than 256 bytes + " + std::to_string(n_special) +
                        " special tokens");
  }

  TrainedBpe out;
  out.split_pattern = pattern_;
  std::unordered_map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) {
    out.tokens.emplace_back(1, char(b));
    id_of.emplace(out.tokens.back(), b);
  }

  // Distinct pre-tokens in a fixed order, so that nothing depends on hash-table order.
  std::vector<std::pair<const std::string*, int64_t>> sorted;
  sorted.reserve(counts_.size());
  for (const auto& [word, n] : counts_) sorted.emplace_back(&word, n);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
  std::vector<std::vector<int32_t>> words(sorted.size());
  std::vector<int64_t> freq(sorted.size());
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words that may hold it
  for (size_t w = 0; w < sorted.size(); ++w) {
    freq[w] = sorted[w].second;
    for (char c : *sorted[w].first) words[w].push_back(int32_t(static_cast<unsigned char>(c)));
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t k = pair_key(words[w][i], words[w][i + 1]);
      pair_count[k] += freq[w];
      auto& list = where[k];
      if (list.empty() || list.back() != int32_t(w)) list.push_back(int32_t(w));
    }
  }
  std::priority_queue<Candidate> heap;
  for (const auto& [k, n] : pair_count) heap.push({n, k});

  const int64_t target_merges = int64_t(vocab_size) - 256 - n_special;
  std::unordered_map<uint64_t, int64_t> delta;
  while (int64_t(out.tokens.size()) < 256 + target_merges && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    auto pc = pair_count.find(top.key);
    // Entries are pushed whenever a count changes; only the one matching the current count
    // is live.
    if (pc == pair_count.end() || pc->second != top.count || top.count <= 0) continue;
    if (cancel) cancel->throw_if_cancelled();

    const int32_t a = key_left(top.key), b = key_right(top.key);
    std::string merged = out.tokens[size_t(a)] + out.tokens[size_t(b)];
    // Different merge paths can spell the same bytes; the token is then shared.
    auto [it, fresh] = id_of.emplace(merged, int32_t(out.tokens.size()));
    if (fresh) out.tokens.push_back(std::move(merged));
    const int32_t c = it->second;
    out.merges.push_back({a, b, c});

    delta.clear();
    std::vector<int32_t> affected;
    affected.swap(where[top.key]);
    for (int32_t w : affected) {
      std::vector<int32_t>& syms = words[size_t(w)];
      bool holds = false;
      for (size_t i = 0; i + 1 < syms.size() && !holds; ++i) holds = syms[i] == a && syms[i + 1] == b;
      if (!holds) continue;
      const int64_t f = freq[size_t(w)];
      for (size_t i = 0; i + 1 < syms.size(); ++i) delta[pair_key(syms[i], syms[i + 1])] -= f;
      size_t j = 0;
      for (size_t i = 0; i < syms.size(); ++j) {
        if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) {
          syms[j] = c;
          i += 2;
        } else {
          syms[j] = syms[i++];
        }
      }
      syms.resize(j);
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        const uint64_t k = pair_key(syms[i], syms[i + 1]);
        delta[k] += f;
        if (syms[i] == c || syms[i + 1] == c) {
          auto& list = where[k];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
    }
    for (const auto& [k, d] : delta) {
      if (d == 0) continue;
      int64_t& n = pair_count[k];
      n += d;
      if (n > 0) heap.push({n, k});
    }
    pair_count.erase(top.key);
    if (out.merges.size() % 64 == 0) {
      report(progress, "train tokenizer", "", double(out.merges.size()) / double(target_merges),
             std::to_string(out.merges.size()) + " merges");
    }
  }
  out.first_special = int32_t(out.tokens.size());
  for (const std::string& s : special_tokens) out.tokens.push_back(s);
  return out;
}

ordered_json TrainedBpe::to_tokenizer_json() const {
  ordered_json vocab = ordered_json::object();
  for (int32_t id = 0; id < first_special; ++id) {
    vocab[byte_level_encode(tokens[size_t(id)])] = id;
  }
  ordered_json merge_list = ordered_json::array();
  for (const Merge& m : merges) {
    merge_list.push_back({byte_level_encode(tokens[size_t(m.left)]),
                          byte_level_encode(tokens[size_t(m.right)])});
  }
  ordered_json added = ordered_json::array();
  for (size_t id = size_t(first_special); id < tokens.size(); ++id) {
    added.push_back({{"id", id},
                     {"content", tokens[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  return byte_level_bpe_json(std::move(vocab), std::move(merge_list), std::move(added), split_pattern);
}

template <class Json>
Json byte_level_bpe_json(Json vocab, Json merges, Json added, const std::string& split_pattern,
                         Json post_processor) {
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", std::move(added)},
          {"normalizer", nullptr},
          {"pre_tokenizer", BpeTrainer::pre_tokenizer_json(split_pattern)},
          {"post_processor", std::move(post_processor)},
          {"decoder",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", std::move(vocab)},
            {"merges", std::move(merges)}}}};
}

template nlohmann::json byte_level_bpe_json(nlohmann::json, nlohmann::json, nlohmann::json,
                                            const std::string&, nlohmann::json);
template ordered_json byte_level_bpe_json(ordered_json, ordered_json, ordered_json,
                                          const std::string&, ordered_json);

void TrainedBpe::save(const std::string& path) const {
  const std::string text = to_tokenizer_json().dump(1) + "\n";
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

}  // namespace mcw
