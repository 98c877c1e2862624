// Any model file MCW opens, whatever its format: its tensors (views into memory-mapped
// files), architecture and hyper-parameters. The format-specific readers live beside this
// file; open_model_file() picks one from the path and the file's first bytes.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/tensor.h"

namespace mcw {

enum class ModelFormat { Safetensors, HFDirectory, GGUF, Llama2c, ONNX };
// "safetensors", "hf-directory", "gguf", "llama2.c", "onnx"
const char* model_format_name(ModelFormat f);

struct ModelFile {
  ModelFormat format = ModelFormat::Safetensors;
  std::string path;
  std::string architecture;  // "llama", "gpt2", ... empty when the file does not say
  // Hyper-parameters as the file states them: HF config.json as is; GGUF key/values (long
  // arrays summarised as "array of N <type>"); llama2.c's header fields.
  nlohmann::ordered_json hparams = nlohmann::ordered_json::object();
  std::map<std::string, std::string> metadata;  // free-form strings (safetensors __metadata__)
  std::vector<Tensor> tensors;                  // in file order

  const Tensor* find(std::string_view name) const;
  uint64_t parameter_count() const;
  uint64_t byte_count() const;
};

// Throws mcw::Error naming the path and the problem for anything it cannot read.
ModelFile open_model_file(const std::string& path);

}  // namespace mcw
