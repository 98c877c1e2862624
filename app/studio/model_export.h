// Saving a model where other tools load it: a Hugging Face directory with the source
// model's tokenizer files copied beside the weights and, for a compressed run,
// packed.safetensors (the layers as stored: codes, scales, zero points...). GGUF files are
// engine/export/gguf_export.h's.
#pragma once
#include <string>
#include <vector>

#include "engine/compress/compressed_tensor.h"
#include "engine/io/model_file.h"
#include "engine/model/llama_model.h"

namespace mcw::studio {

struct SavedModel {
  std::string kind;                          // "model-gguf" or "model-hf"
  std::string weights_file;                  // the file recorded as the run's artifact
  std::vector<std::string> tokenizer_files;  // copied from the source, in the written dir
  std::string packed_file;                   // the packed layers, when there were any
};

// True when `path` names a GGUF file (ends in .gguf, any case).
bool is_gguf_path(const std::string& path);
// What a Hugging Face directory written at `path` holds (the sharded index or the single
// weights file, the tokenizer files copied from `source`, packed.safetensors if present).
SavedModel describe_hf_export(const ModelFile& source, const std::string& path);

// A Hugging Face directory at `path`, with `packed` (the run's compressed layers, if any)
// as packed.safetensors in it. Throws mcw::Error naming the path when it cannot be written.
SavedModel save_exported_model(const LlamaModel& model, const ModelFile& source,
                               const std::string& path,
                               const std::vector<const CompressedTensor*>& packed = {});

}  // namespace mcw::studio
