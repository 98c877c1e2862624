// Finds the tokenizer that belongs to a model, whatever format the model came in:
//   HF directory: tokenizer.json (byte-level BPE), or mcw_tokenizer.json {"type": "byte"}
//   GGUF:         tokenizer.ggml.* (model "llama" = SentencePiece BPE, "gpt2" = byte BPE)
//   llama2.c:     tokenizer.bin beside the checkpoint (Karpathy's format)
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/io/gguf.h"

#include "engine/io/model_file.h"
#include "engine/model/sentencepiece_tokenizer.h"
#include "engine/model/tokenizer.h"

namespace mcw {

// Throws mcw::Error naming the missing or broken tokenizer file.
std::unique_ptr<Tokenizer> load_tokenizer(const ModelFile& m);

// The tokenizer.json a GGUF's byte-level BPE vocabulary (tokenizer.ggml.model "gpt2":
// Llama 3, Qwen2, GPT-2) stands for: vocabulary, merges, the split its tokenizer.ggml.pre
// names, added tokens, BOS as a TemplateProcessing post-processor; nullopt for another
// tokenizer model (SentencePiece "llama" has no such file here). Throws mcw::Error naming
// `path` for a pre-tokenizer MCW does not know.
std::optional<nlohmann::json> gguf_bpe_tokenizer_json(const GGUFFile& g, const std::string& path);
// The model's tokenizer as files in `dir`, beside a copy of its weights: the files beside
// the source (copy_tokenizer_files), and for a GGUF with a byte-level BPE vocabulary the
// tokenizer.json it stands for (none when its pre-tokenizer is one MCW does not know) and a
// tokenizer_config.json (special tokens by name, add_bos_token, its chat template); for a
// GGUF's SentencePiece vocabulary, mcw_tokenizer.json (MCW's own: no HF file is made).
// Returns the files written.
std::vector<std::string> write_tokenizer_files(const ModelFile& source, const std::string& dir);

// mcw_tokenizer.json {"type": "sentencepiece", "tokens", "scores", "types", "bos", "eos",
// "unk", "add_space_prefix"}: a SentencePiece vocabulary as a GGUF holds it (written by
// write_tokenizer_files for a GGUF's "llama" tokenizer). Throws mcw::Error naming `path`.
SentencePieceVocab sentencepiece_vocab_from_json(const nlohmann::json& j, const std::string& path);

// Reads a llama2.c tokenizer.bin for a vocabulary of `vocab_size` pieces.
std::unique_ptr<Tokenizer> read_llama2c_tokenizer(const std::string& path, int64_t vocab_size);
// The same as the vocabulary itself (what a GGUF export writes).
SentencePieceVocab read_llama2c_vocab(const std::string& path, int64_t vocab_size);

}  // namespace mcw
