// safetensors: 8-byte little-endian header length N, N bytes of JSON (name -> {dtype,
// shape, data_offsets}, optional "__metadata__" string map), then the data section.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/mapped_file.h"
#include "engine/core/tensor.h"

namespace mcw {

struct SafetensorsFile {
  std::vector<Tensor> tensors;  // views into `file`, in data-offset order
  std::map<std::string, std::string> metadata;
  std::shared_ptr<const MappedFile> file;
};

// Validates the whole header before returning: any problem throws mcw::Error with path
// and byte offset, and nothing is allocated beyond what the file's size justifies.
SafetensorsFile read_safetensors(const std::string& path);
// Writes atomically (see AtomicFile); tensors keep their order and names.
void write_safetensors(const std::string& path, const std::vector<Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace mcw
