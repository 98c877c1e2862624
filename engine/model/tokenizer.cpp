#include "engine/model/tokenizer.h"

#include "engine/core/error.h"

namespace mcw {

void throw_bad_token_id(int32_t id, int32_t vocab_size) {
  throw Error("", "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                      std::to_string(vocab_size) + ")");
}

}  // namespace mcw
