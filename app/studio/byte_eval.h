// Perplexity of a model on a text file with byte tokens (token id = byte value): the
// simplest tokenizer that works for any text, used until real tokenizers arrive.
#pragma once
#include <cstdint>
#include <string>

#include "engine/core/progress.h"
#include "engine/eval/perplexity.h"

namespace mcw::studio {

struct ByteEvalRequest {
  std::string model_path, text_path;
  int64_t window = 256, stride = 256;
  int64_t max_tokens = 0;  // 0: the whole text
};

struct ByteEvalOutcome {
  EvalResult result;
  int64_t tokens = 0;
  int64_t vocab = 0;
};

// Throws mcw::Error for a missing file, a model whose vocabulary has fewer than 256
// entries, or a text shorter than two bytes; mcw::Cancelled when `cancel` fires.
ByteEvalOutcome run_byte_evaluation(const ByteEvalRequest& req, const ProgressFn& progress,
                                    const CancelToken& cancel);

}  // namespace mcw::studio
