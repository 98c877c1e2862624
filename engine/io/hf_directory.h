// A Hugging Face model directory: config.json plus model.safetensors, or several shards
// listed by model.safetensors.index.json.
#pragma once
#include <string>

#include "engine/io/model_file.h"

namespace mcw {

ModelFile read_hf_directory(const std::string& dir);

}  // namespace mcw
