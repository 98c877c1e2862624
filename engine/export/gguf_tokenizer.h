// The tokenizer.ggml.* key/values that let llama.cpp run an exported model, built from the
// tokenizer the source model came with:
//   tokenizer.json (byte-level BPE: GPT-2, Llama-3, Qwen2, MCW's trained ones)  "gpt2"
//   mcw_tokenizer.json {"type": "byte"} (the same as a merge-less byte-level BPE) "gpt2"
//   llama2.c tokenizer.bin (SentencePiece pieces with scores)                   "llama"
//   a GGUF source: its own tokenizer.* keys, copied
// The vocabulary is padded to the model's embedding rows with unused "[PAD<id>]" tokens, as
// llama.cpp's converter does. add_bos_token is set when the vocabulary has a BOS, which is
// how MCW itself encodes. SentencePiece-style tokenizer.json files (Llama-2, Mistral-7B:
// Metaspace, byte_fallback) and pre-tokenizers llama.cpp has no name for are refused with
// a message: their GGUF would tokenize differently in llama.cpp.
#pragma once
#include <vector>

#include "engine/io/gguf.h"
#include "engine/io/model_file.h"

namespace mcw {

// Throws mcw::Error naming the tokenizer file and what cannot be written.
std::vector<GGUFKeyValue> gguf_tokenizer_kvs(const ModelFile& source, int64_t vocab_rows);

}  // namespace mcw
