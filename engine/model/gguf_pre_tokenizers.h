// The byte-level BPE pre-tokenizers GGUF names in tokenizer.ggml.pre, each with the split
// regex of the tokenizer.json it stands for. llama.cpp does not store the regex in the file:
// it compiles one per name, so MCW must map names to patterns when reading a GGUF and
// patterns to names when writing one. Only names whose llama.cpp split is the one regex of
// the tokenizer.json are listed (gpt-2, llama-bpe, qwen2).
#pragma once
#include <string_view>

namespace mcw {

// The tokenizer.json split pattern of a tokenizer.ggml.pre name; nullptr if MCW does not
// know the name.
const char* gguf_pre_tokenizer_pattern(std::string_view name);
// The tokenizer.ggml.pre name of a split pattern; empty if none matches exactly.
std::string_view gguf_pre_tokenizer_name(std::string_view pattern);
// "gpt-2, llama-bpe, qwen2" for messages.
const char* gguf_pre_tokenizer_names();

}  // namespace mcw
