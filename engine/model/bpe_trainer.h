// Learns a byte-level BPE vocabulary from text, for the small models MCW trains itself.
// Text is cut into pre-tokens with a GPT-2 style regex; each distinct pre-token is counted
// once with its frequency; then the most frequent adjacent pair is merged again and again
// (ties: lowest left id, then lowest right id) until the vocabulary reaches its target size.
// Pair counts are updated only for the words a merge touches, so a 2000-token vocabulary
// from a few MB of text takes seconds. The result loads with BpeTokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/core/progress.h"

namespace mcw {

class PreTokenizer;

struct TrainedBpe {
  // Raw bytes of each id: 0..255 are the bytes themselves, then the merged tokens in the
  // order they were learned, then the special tokens' text.
  std::vector<std::string> tokens;
  struct Merge {
    int32_t left, right, result;
  };
  std::vector<Merge> merges;  // in rank order
  int32_t first_special = 0;  // special tokens are ids [first_special, tokens.size())
  std::string split_pattern;

  // A complete tokenizer.json: Split + ByteLevel pre-tokenizer, BPE model, ByteLevel
  // decoder, the special tokens as added tokens.
  nlohmann::ordered_json to_tokenizer_json() const;
  // Writes to_tokenizer_json() atomically; throws mcw::Error naming path.
  void save(const std::string& path) const;
};

// A byte-level BPE tokenizer.json as HF's tokenizers reads it (Split + ByteLevel
// pre-tokenizer for `split_pattern`, BPE model, ByteLevel decoder) around the parts that
// differ: vocabulary (token → id), merges, added tokens, post-processor (null: none).
// Json: nlohmann::json or nlohmann::ordered_json.
template <class Json>
Json byte_level_bpe_json(Json vocab, Json merges, Json added, const std::string& split_pattern,
                         Json post_processor = nullptr);

class BpeTrainer {
 public:
  explicit BpeTrainer(std::string split_pattern = default_split_pattern());
  ~BpeTrainer();

  // Counts the pre-tokens of one document; may be called many times.
  void add_text(std::string_view text);
  size_t distinct_pre_tokens() const { return counts_.size(); }

  // vocab_size counts the 256 bytes, the merges and the special tokens. Stops early when
  // no pair is left. Throws mcw::Error for a vocab_size below 256 + specials or a special
  // token that is empty, repeated or not valid UTF-8.
  TrainedBpe train(int32_t vocab_size,
                   const std::vector<std::string>& special_tokens = {"<|bos|>", "<|eos|>"},
                   const CancelToken* cancel = nullptr, const ProgressFn& progress = {}) const;

  static std::string default_split_pattern();
  // The pre_tokenizer node of the tokenizer.json the trainer writes for this pattern.
  static nlohmann::ordered_json pre_tokenizer_json(const std::string& split_pattern);

 private:
  std::string pattern_;
  std::unique_ptr<PreTokenizer> pre_;
  std::unordered_map<std::string, int64_t> counts_;  // raw-byte pre-token -> occurrences
};

}  // namespace mcw
