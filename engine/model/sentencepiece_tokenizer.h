// SentencePiece BPE as GGUF stores it (tokenizer.ggml.model = "llama"): a list of pieces
// with scores and types. Encoding follows llama.cpp's "llama" vocabulary: a space is put in
// front of the text (add_dummy_prefix), spaces become U+2581 "▁", the text is split into
// UTF-8 characters, and the adjacent pair whose concatenation is a piece with the highest
// score is merged (leftmost on ties) until none is left; characters that are no piece fall
// back to byte tokens "<0xXX>" (or UNK). Built from plain vectors so that it does not
// depend on the GGUF reader.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/model/tokenizer.h"

namespace mcw {

// GGUF's tokenizer.ggml.token_type values.
enum class PieceType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

struct SentencePieceVocab {
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens
  std::vector<float> scores;        // tokenizer.ggml.scores; empty: all 0
  std::vector<int32_t> types;       // tokenizer.ggml.token_type; empty: all Normal
  int32_t bos_id = -1, eos_id = -1, unk_id = -1;
  bool add_dummy_prefix = true;  // tokenizer.ggml.add_space_prefix
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Validates sizes, types, ids and byte pieces; errors name source and the GGUF key.
  SentencePieceTokenizer(SentencePieceVocab vocab, std::string source);

  // User-defined pieces in the text are matched literally; control pieces ("<s>") are not.
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;
  // Control pieces decode to nothing; the dummy prefix space is dropped.
  std::string decode(std::span<const int32_t> ids) const override;
  // Control and unknown pieces give their text; "▁" is a space; byte pieces their byte.
  std::string token_to_piece(int32_t id) const override;
  int32_t vocab_size() const override { return int32_t(v_.tokens.size()); }
  int32_t bos_id() const override { return v_.bos_id; }
  int32_t eos_id() const override { return v_.eos_id; }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  PieceType type(int32_t id) const { return PieceType(v_.types[size_t(id)]); }
  void encode_text(std::string_view text, bool prefix, std::vector<int32_t>& ids) const;

  SentencePieceVocab v_;
  std::string source_;
  // Pieces BPE may produce (normal, user-defined, undefined), text -> id.
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> pieces_;
  std::vector<std::vector<int32_t>> user_by_first_byte_;  // user-defined ids, longest first
  int32_t byte_ids_[256];
  int byte_value_of_id(int32_t id) const;
  std::vector<int16_t> byte_value_;  // per id: the byte of a Byte piece, else -1
};

}  // namespace mcw
