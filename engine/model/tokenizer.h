// The one interface the rest of MCW sees for turning text into token ids and back, whatever
// vocabulary a model came with (raw bytes, byte-level BPE from tokenizer.json, SentencePiece
// BPE from GGUF). Implementations are immutable after construction, so one tokenizer may
// encode from many threads at once.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mcw {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // add_bos prepends bos_id() when the vocabulary has one.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  // Throws mcw::Error for an id outside [0, vocab_size()).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The bytes one token stands for (special tokens: their literal text). Not always
  // valid UTF-8 on its own: byte tokens carry single bytes of longer characters.
  virtual std::string token_to_piece(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
};

// Shared by implementations: the error for an id that names no token.
[[noreturn]] void throw_bad_token_id(int32_t id, int32_t vocab_size);

}  // namespace mcw
