// Which files beside a model hold its tokenizer, so that an exported or compressed copy
// can carry them along.
#pragma once
#include <string>
#include <vector>

#include "engine/io/model_file.h"

namespace mcw {

// The tokenizer files of a model (those that exist): an HF directory's tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, tokenizer.model, mcw_tokenizer.json; the
// tokenizer.bin beside a llama2.c checkpoint; the files beside a lone .safetensors. None
// for GGUF (its tokenizer lives in its metadata).
std::vector<std::string> tokenizer_files_of(const ModelFile& source);

// The tokenizer files a directory MCW wrote holds (any of the above, tokenizer.bin included).
std::vector<std::string> tokenizer_files_in(const std::string& dir);

// Copies them into `dir`; returns the copies. Throws mcw::Error naming a file it cannot copy.
std::vector<std::string> copy_tokenizer_files(const ModelFile& source, const std::string& dir);

}  // namespace mcw
