// GGUF v3 (ggml's single-file model format). The full reader/writer API is added by the
// GGUF work; read_gguf_model() is what open_model_file() uses.
#pragma once
#include <string>

#include "engine/io/model_file.h"

namespace mcw {

ModelFile read_gguf_model(const std::string& path);

}  // namespace mcw
