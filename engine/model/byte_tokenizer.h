// The simplest vocabulary: one token per byte (id = byte value), optionally followed by
// BOS and EOS ids. Any byte string round-trips; MCW's smallest trained models use it.
#pragma once
#include <nlohmann/json.hpp>

#include "engine/model/tokenizer.h"

namespace mcw {

class ByteTokenizer final : public Tokenizer {
 public:
  // BOS, if present, gets id 256 and EOS the next id.
  explicit ByteTokenizer(bool with_bos = true, bool with_eos = true);

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;
  // BOS and EOS stand for no bytes and are left out.
  std::string decode(std::span<const int32_t> ids) const override;
  // "<|bos|>" and "<|eos|>" for the special ids.
  std::string token_to_piece(int32_t id) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }

 private:
  int32_t bos_ = -1, eos_ = -1, vocab_size_ = 256;
};

inline constexpr int64_t kByteVocabSize = 256;

// A Hugging Face tokenizer.json for the plain 256-byte vocabulary: a byte-level BPE with no
// merges whose tokens are the GPT-2 byte characters in byte order, so both `tokenizers`
// and MCW's BpeTokenizer map byte b to id b.
nlohmann::ordered_json byte_tokenizer_json();

}  // namespace mcw
