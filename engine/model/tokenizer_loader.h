// Finds the tokenizer that belongs to a model, whatever format the model came in:
//   HF directory: tokenizer.json (byte-level BPE), or mcw_tokenizer.json {"type": "byte"}
//   GGUF:         tokenizer.ggml.* (model "llama" = SentencePiece BPE, "gpt2" = byte BPE)
//   llama2.c:     tokenizer.bin beside the checkpoint (Karpathy's format)
#pragma once
#include <memory>
#include <string>

#include "engine/io/model_file.h"
#include "engine/model/sentencepiece_tokenizer.h"
#include "engine/model/tokenizer.h"

namespace mcw {

// Throws mcw::Error naming the missing or broken tokenizer file.
std::unique_ptr<Tokenizer> load_tokenizer(const ModelFile& m);

// Reads a llama2.c tokenizer.bin for a vocabulary of `vocab_size` pieces.
std::unique_ptr<Tokenizer> read_llama2c_tokenizer(const std::string& path, int64_t vocab_size);
// The same as the vocabulary itself (what a GGUF export writes).
SentencePieceVocab read_llama2c_vocab(const std::string& path, int64_t vocab_size);

}  // namespace mcw
