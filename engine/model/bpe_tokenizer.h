// BPE tokenizers from a Hugging Face tokenizer.json: byte-level ones (GPT-2, Llama-3, MCW's
// own trained vocabularies) and SentencePiece-style ones exported to that format (Llama-2:
// Metaspace or Prepend/Replace normalizers, byte_fallback). Encoding: added tokens are cut
// out literally first, the text between them is normalized and pre-tokenized, and each
// piece is merged lowest rank first (leftmost on ties), as Hugging Face's BPE does.
// Everything unsupported in the file is an error naming its key, never silently ignored.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "engine/model/pre_tokenizer.h"
#include "engine/model/token_decoder.h"
#include "engine/model/tokenizer.h"

namespace mcw {

struct BpeTokenizerOptions {
  // tokenizer.json does not say which tokens are BOS and EOS (tokenizer_config.json does);
  // a caller that knows sets them here. Left empty, BOS is the special token a
  // TemplateProcessing post-processor puts first, else one of the usual names
  // (<|begin_of_text|>, <s>, <|bos|>, ...), and EOS likewise by name.
  std::string bos_token, eos_token;
};

class BpeTokenizer final : public Tokenizer {
 public:
  // Throws mcw::Error naming path (and the byte offset for malformed JSON).
  static std::unique_ptr<BpeTokenizer> from_file(const std::string& path,
                                                 const BpeTokenizerOptions& options = {});
  // source names the document in errors.
  BpeTokenizer(const nlohmann::json& doc, std::string source,
               const BpeTokenizerOptions& options = {});
  ~BpeTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  std::string token_to_piece(int32_t id) const override;
  int32_t vocab_size() const override { return int32_t(id_to_token_.size()); }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }

  // The id of a vocabulary string or added token's content, -1 if none.
  int32_t token_id(std::string_view token) const;
  size_t num_merges() const { return merges_.size(); }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;
  struct Merge {
    int32_t rank, result;
  };
  struct AddedToken {
    std::string content;
    int32_t id;
    bool lstrip, rstrip, single_word;
  };
  struct Segment {
    size_t begin, end;  // text outside added tokens: [begin, end); added token: id >= 0
    int32_t id;
  };

  void load_vocab(const nlohmann::json& model, size_t id_bound);
  void load_merges(const nlohmann::json& model);
  void load_added_tokens(const nlohmann::json& doc, size_t id_bound);
  void find_special_ids(const nlohmann::json& doc, const BpeTokenizerOptions& options);
  std::vector<Segment> split_added(std::string_view text) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& ids) const;
  void push_unknown(std::string_view chars, std::vector<int32_t>& ids) const;
  int32_t merge_result(int32_t left, int32_t right, int32_t* rank) const;

  std::string source_;
  std::vector<std::string> id_to_token_;  // vocabulary strings as stored; "" for unused ids
  std::vector<bool> is_added_;
  StringMap vocab_;                                // model.vocab only
  std::unordered_map<uint64_t, Merge> merges_;     // (left id << 32 | right id) -> merge
  std::vector<AddedToken> added_;
  std::vector<std::vector<int32_t>> added_by_first_byte_;  // indices into added_, longest first
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<TokenDecoder> decoder_;
  int32_t unk_ = -1, bos_ = -1, eos_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t byte_tokens_[256];  // byte_fallback: id of "<0xXX>", -1 if absent
};

}  // namespace mcw
