#include "engine/model/gguf_pre_tokenizers.h"

#include "engine/model/unicode_regex.h"

namespace mcw {
namespace {

struct PreTokenizer {
  std::string_view name;
  const char* pattern;
};

// Patterns as the model's tokenizer.json holds them (JSON-decoded).
const PreTokenizer kPreTokenizers[] = {
    {"gpt-2", nullptr},  // gpt2_split_pattern()
    {"llama-bpe",
     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
    {"qwen2",
     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
};

const char* pattern_of(const PreTokenizer& p) {
  return p.pattern ? p.pattern : gpt2_split_pattern();
}

}  // namespace

const char* gguf_pre_tokenizer_pattern(std::string_view name) {
  for (const PreTokenizer& p : kPreTokenizers)
    if (p.name == name) return pattern_of(p);
  return nullptr;
}

std::string_view gguf_pre_tokenizer_name(std::string_view pattern) {
  for (const PreTokenizer& p : kPreTokenizers)
    if (pattern == pattern_of(p)) return p.name;
  return {};
}

const char* gguf_pre_tokenizer_names() { return "gpt-2, llama-bpe, qwen2"; }

}  // namespace mcw
